from mlstack.cli import app

app()
