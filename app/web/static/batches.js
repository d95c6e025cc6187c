"use strict";
// Keeps the batches table live: polls GET /v1/batches for this page's rows once a second while a batch is
// unfinished (every 5 s otherwise, to notice new ones), updates status, progress, rate and ETA in place,
// and offers Cancel (DELETE /v1/batches/{id} with the stored key) only where the server would accept it:
// an unfinished batch, and the key that started it or an admin key (every visitor, on a server without keys).

const UNFINISHED = new Set(["pending", "running"]);
const FAST_POLL_MS = 1000;
const SLOW_POLL_MS = 5000;

const table = document.getElementById("batches");
const rows = table.tBodies[0];
const rowTemplate = document.getElementById("batch-row");
const message = document.getElementById("batches-message");
const noBatches = document.getElementById("no-batches");
const batches = new Map();
let pollTimer = null;

function mayCancel(batch, principal) {
  if (!principal || principal.error || !principal.scope || !UNFINISHED.has(batch.status)) return false;
  return principal.scope === "admin" || (principal.scope === "write" && principal.name === batch.owner);
}

function field(row, name) {
  return row.querySelector(`[data-field="${name}"]`);
}

function populationLink(path, batch) {
  const query = new URLSearchParams({ space: batch.space, dataset: batch.dataset, config: batch.configuration });
  return `${path}?${query}`;
}

function fillRow(row, batch) {
  row.id = `batch-${batch.id}`;
  row.dataset.batchId = batch.id;
  row.dataset.status = batch.status;
  row.dataset.owner = batch.owner || "";
  field(row, "id").textContent = batch.id;
  field(row, "kind").textContent = batch.kind;
  const status = field(row, "status");
  status.textContent = batch.status;
  status.className = `status status-${batch.status}`;
  const fingerprint = document.createElement("code");
  fingerprint.title = batch.configuration;
  fingerprint.textContent = batch.configuration.slice(0, 8);
  field(row, "population").replaceChildren(`${batch.space} · ${batch.dataset} · `, fingerprint);
  const progress = field(row, "progress");
  progress.max = Math.max(batch.total, 1);
  progress.value = batch.done + batch.failed + batch.cancelled;
  field(row, "counts").textContent = `${batch.done} / ${batch.total}`;
  field(row, "failed").textContent = batch.failed;
  field(row, "rate").textContent = nasscore.formatRate(batch.rate_per_second);
  field(row, "eta").textContent = UNFINISHED.has(batch.status) ? nasscore.formatDuration(batch.eta_seconds) : "—";
  field(row, "owner").textContent = batch.owner || "anonymous";
  field(row, "created").textContent = nasscore.formatTimestamp(batch.created_at);
  field(row, "leaderboard").href = populationLink("/", batch);
  field(row, "correlations").href = populationLink("/correlations", batch);
  const cancel = field(row, "cancel");
  cancel.hidden = !mayCancel(batch, nasscore.principal);
  cancel.disabled = false;
}

function render(items) {
  const shown = new Set();
  for (const batch of items) {
    batches.set(batch.id, batch);
    shown.add(String(batch.id));
    let row = document.getElementById(`batch-${batch.id}`);
    if (!row) row = rowTemplate.content.firstElementChild.cloneNode(true);
    fillRow(row, batch);
    rows.append(row);
  }
  for (const row of [...rows.rows]) {
    if (!shown.has(row.dataset.batchId)) row.remove();
  }
  noBatches.hidden = items.length > 0;
}

function showMessage(text) {
  message.textContent = text;
  message.hidden = !text;
}

async function poll() {
  window.clearTimeout(pollTimer);
  let delay = SLOW_POLL_MS;
  try {
    const query = new URLSearchParams({ limit: table.dataset.limit, offset: table.dataset.offset });
    const response = await fetch(`/v1/batches?${query}`);
    if (response.ok) {
      const page = await response.json();
      render(page.items);
      if (page.items.some((batch) => UNFINISHED.has(batch.status))) delay = FAST_POLL_MS;
    } else {
      showMessage(await nasscore.errorText(response));
    }
  } catch (error) {
    showMessage(`cannot reach the server: ${error.message}`);
  }
  pollTimer = window.setTimeout(poll, delay);
}

async function cancel(button) {
  const row = button.closest("tr");
  button.disabled = true;
  const response = await fetch(`/v1/batches/${row.dataset.batchId}`, {
    method: "DELETE",
    headers: nasscore.authHeaders(),
  });
  if (response.ok) {
    showMessage("");
    fillRow(row, await response.json());
  } else {
    showMessage(await nasscore.errorText(response));
    button.disabled = false;
  }
  poll();
}

rows.addEventListener("click", (event) => {
  const button = event.target.closest('button[data-field="cancel"]');
  if (button) cancel(button);
});

document.addEventListener("nasscore:principal", () => {
  for (const row of rows.rows) {
    const batch = batches.get(Number(row.dataset.batchId));
    if (batch) field(row, "cancel").hidden = !mayCancel(batch, nasscore.principal);
  }
});

poll();
