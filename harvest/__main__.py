from .cli import cli

cli(prog_name="ai4mat")
