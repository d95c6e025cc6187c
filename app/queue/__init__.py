"""The work queue: how jobs' items are shared out to dispatchers and what a dispatcher does with them.

- `items`: the queue mechanics on the database: claim, lease renewal (the heartbeat), requeue of expired
  leases, finish, release, return. Several dispatchers (threads, API processes, hosts) share one queue.
- `dispatcher`: the loop that claims items, plans each (isomorphic cells computed once, stored scores
  reused), submits it to an executor (app/workers) and records what comes back.

Jobs themselves (create, resume, cancel, progress) are app/services/jobs.py; executors are app/workers."""
