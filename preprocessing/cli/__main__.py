from preprocessing.cli.main import main

main()
