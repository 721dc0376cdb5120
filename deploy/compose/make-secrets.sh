#!/bin/sh
# Creates the secrets docker-compose.yml mounts as files (once; existing ones are kept):
# random PostgreSQL and MongoDB passwords and the MongoDB URI the platform connects with.
# Usage: sh deploy/compose/make-secrets.sh [DIR]   (default: deploy/compose/secrets)
set -eu
dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
random() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
[ -s "$dir/postgres_password" ] || random > "$dir/postgres_password"
[ -s "$dir/mongodb_password" ] || random > "$dir/mongodb_password"
[ -s "$dir/mongodb_uri" ] || printf 'mongodb://iotcloud:%s@mongo:27017/?authSource=admin\n' "$(cat "$dir/mongodb_password")" > "$dir/mongodb_uri"
# Compose bind-mounts these files with their host owner and mode, and the platform's containers run
# as uid 999: the files are world-readable (0644) inside a directory only you can enter (0700).
chmod 0700 "$dir"
chmod 0644 "$dir/postgres_password" "$dir/mongodb_password" "$dir/mongodb_uri"
echo "secrets in $dir (keep them out of version control)"
