"""Running mlstack on a real Prefect server: `stack` starts and stops the local services of
`mlstack up`, `project` reads `prefect.yaml`, creates the work pools and applies the deployments.
No Prefect flow is imported here: the CLI and the tests drive these as plain functions."""
