"""Database drivers behind the store: one small interface, two engines.

The store (packproof/store.py) writes its SQL once, in the subset both engines share,
with `?` placeholders; a driver runs it. What differs lives here: connecting, column
types in the schema, how a write transaction is serialised across processes (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), and which driver
exceptions mean "the store failed". Serialising writes keeps reading ids dense in commit
order on both engines, which is what lets a block seal a contiguous id range.

Modules: `driver` (the interface every engine implements), `urls` (store URLs: which engine,
redacted for logs, checked before connecting), `sqlite` and `postgres` (the engines).
"""
