"""packproof: provable transport condition of lithium-ion battery packs.

The flow, and the package that owns each step::

    simulators/ --MQTT--> broker/ --MQTT--> edge/ --rows--> store --batches--> anchor/
                                                               api/ <----------+

This package is the kernel every stage stands on: the reading contract, its canonical
bytes, keys, errors, the RFC 6962 hasher, delivery watermarks, the typed records and the
store. The stages are mapped into the namespace (edge/ is `packproof.edge`, ...), and the
`packproof` command, which composes them all, is `packproof.app`. The kernel imports no
stage (tests/test_layout.py).
"""

__version__ = "0.1.0"
