from crmclean.cli import main

main()
