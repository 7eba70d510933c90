from lvtime.cli import main

main()
