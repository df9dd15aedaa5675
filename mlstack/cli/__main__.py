from mlstack.cli.main import main

main()
