"""The API's routes, by what they serve: jobs (and checking requests), sweeps, and operations."""
