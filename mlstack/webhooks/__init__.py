"""The webhook receiver: GitHub and Slack deliveries, verified by their signatures, recorded once
in Postgres and announced as Prefect events, so that a refresh of just the touched documents
(`rag-update`) runs within seconds instead of at the next hourly refresh.

- `deliveries`: signatures checked and payloads read into `Delivery` (ids, never text);
- `inbox`: the table of accepted deliveries: a redelivery is found there and does nothing twice,
  and a delivery stays pending until a refresh has taken its document;
- `app`: the FastAPI app `mlstack serve-webhooks` serves, and `mlstack up` starts.
"""
