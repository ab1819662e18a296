"""packproof: provable transport condition of lithium-ion battery packs.

The flow, and the package that owns each step::

    simulators/ --MQTT--> broker/ --MQTT--> edge/ --rows--> store --batches--> anchor/
                                                               api/ <----------+

`packproof` (this package) holds what every stage shares: the reading contract,
its canonical bytes, device keys, the store and the command line.
"""

__version__ = "0.1.0"
