#!/bin/sh
# PostgreSQL's image runs this once, when the `pgdata` volume is first initialised
# (/docker-entrypoint-initdb.d), as the administrator (POSTGRES_USER) in POSTGRES_DB.
#
# packproof's own login, least privilege: no superuser, no CREATEDB/CREATEROLE; it may connect
# to this one database and owns one schema named after it, which PostgreSQL's default
# search_path ("$user", public) makes the store's. It creates no objects anywhere else
# (PostgreSQL 15+ grants no CREATE on `public` to PUBLIC). The password is read by psql from
# the environment (\getenv) and quoted by psql (:'password'): any characters, never on a command line.
#
# PACKPROOF_DB_ROLE (default packproof) is for tests/test_deploy.py, which runs this script
# against a throwaway role.
set -eu
PACKPROOF_DB_ROLE="${PACKPROOF_DB_ROLE:-packproof}"
export PACKPROOF_DB_ROLE
: "${PACKPROOF_DB_PASSWORD:?set PACKPROOF_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "${POSTGRES_USER:-postgres}" \
     --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\getenv role PACKPROOF_DB_ROLE
\getenv password PACKPROOF_DB_PASSWORD
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO :"role";
CREATE SCHEMA AUTHORIZATION :"role";
SQL
