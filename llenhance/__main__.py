from llenhance.cli import main

main()
