"""`python -I -m previewbot`: how action.yml runs previewbot, with nothing but its own packages on the path."""

from previewbot.cli import main

main(prog_name="previewbot")
