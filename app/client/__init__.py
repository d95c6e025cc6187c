"""The Python client of a nasscore server, for search loops and notebooks:

    from app.client import Client, NasscoreError

    with Client("http://127.0.0.1:8000") as nasscore:      # api_key=... or $NASSCORE_API_KEY
        result = nasscore.score("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|")
        result.scores["snip"].value, result.vote.rank
        batch = nasscore.batch(sample=100, seed=0)
        batch.wait(progress=True)                           # tqdm bar: done/total, rate, ETA
        nasscore.leaderboard(limit=10).to_pandas()          # pandas: pip install 'nasscore[client]'

Results are the API's own response models (app.api.schemas: ScoreResponse, BatchOut, LeaderboardOut, ...),
so they are documented once, at /docs. Every failure raises NasscoreError with the HTTP `status` and the
`field` the server named. Requests have a timeout, and are retried with exponential backoff after a
connection failure and on 429/503 (honouring Retry-After).

**Synchronous only: there is no async twin.** The client is thread-safe, so an asyncio program can run its
calls in threads (`await asyncio.to_thread(nasscore.score, arch)`), and a search loop that wants many
architectures scored at once is better served by one `batch(...)` than by many concurrent `score` calls."""

from app.client.batches import Batch
from app.client.client import Client
from app.client.errors import NasscoreError, PlainHttpKeyWarning
from app.client.results import Correlations, Export, Leaderboard

__all__ = ["Batch", "Client", "Correlations", "Export", "Leaderboard", "NasscoreError", "PlainHttpKeyWarning"]
