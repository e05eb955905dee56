"""`python -m salesai`: the same as the `salesai` command."""

from salesai.cli import main

if __name__ == "__main__":
    main()
