"""Condition certificates (issue 18): per pack, a document anyone can check offline.

`claims` computes every claim from the readings (pure; the same threshold and excursion code the
ingestor runs), `document` is the format (`packproof-certificate/1`), `build` assembles one from the
store, `verify` checks one offline, `charts`/`html`/`pdf` draw it, `passport` maps it to the EU
Battery Regulation's passport attributes. docs/design.md, "Certificates", is the contract.
"""
