"""The builder of the embedded tiny zoo: ``python -m zoo_builder.build`` trains the tokenizer, the model and the
SAEs, and writes ``sae_checks/zoo/files`` (the shipped files, read by ``sae_checks.zoo``). It sits outside
the runtime package, above it: it imports ``sae_checks`` (the pass kernel measures the SAEs it trains;
``stats`` measures them with ``sae_checks.api.run``), and nothing in ``sae_checks`` imports it.
"""
