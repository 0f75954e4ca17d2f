#!/usr/bin/env bash
# Restore drill: prove that the per-schema backups restore. It dumps each service schema of DATABASE_URL
# (pg_dump -n <schema>, custom format, one file per schema, all from one exported snapshot so they agree with each
# other), restores them into a new scratch database, compares every table's row count with the source as of that
# snapshot, and checks that every wallet balance equals the sum of its ledger. Exits non-zero on any difference.
# It only reads the source database.
#
# Usage: DATABASE_URL=postgresql://user:pass@host:5432/yummi scripts/restore_drill.sh [options]
#   --schemas "identity catalog orders payments ai"   the schemas to drill (ones the source lacks are skipped)
#   --target-url URL   a database on the server where the scratch database is created (default: the source's
#                      server); the role needs CREATEDB there
#   --dump-dir DIR     write the dumps to DIR and keep them (default: a temporary directory, removed)
#   --keep             keep the scratch database (and the dumps) to look at; drop it yourself afterwards
# DATABASE_URL may use the SQLAlchemy form (postgresql+asyncpg://); it is turned into a libpq URL.
# Needs psql, pg_dump and pg_restore at least as new as the server (major version), and python3.
set -euo pipefail

SCHEMAS="identity catalog orders payments ai"
TARGET_URL=""
DUMP_DIR=""
KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --schemas) SCHEMAS="$2"; shift 2 ;;
        --target-url) TARGET_URL="$2"; shift 2 ;;
        --dump-dir) DUMP_DIR="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ -n "${DATABASE_URL:-}" ]] || { echo "DATABASE_URL is not set" >&2; exit 2; }
for tool in psql pg_dump pg_restore python3; do
    command -v "${tool}" >/dev/null || { echo "${tool} is not installed" >&2; exit 2; }
done

# A libpq URL from a SQLAlchemy one, optionally with another database name.
libpq_url() {
    python3 - "$1" "${2:-}" <<'PY'
import sys
from urllib.parse import urlsplit, urlunsplit

url, dbname = sys.argv[1], sys.argv[2]
parts = urlsplit(url)
scheme = parts.scheme.split("+", 1)[0].replace("postgres", "postgresql", 1).replace("postgresqlql", "postgresql")
parts = parts._replace(scheme=scheme)
if dbname:
    parts = parts._replace(path="/" + dbname)
print(urlunsplit(parts))
PY
}

SOURCE="$(libpq_url "${DATABASE_URL}")"
TARGET_ADMIN="$(libpq_url "${TARGET_URL:-${DATABASE_URL}}")"
SCRATCH_DB="yummi_restore_drill_$(date -u +%Y%m%d%H%M%S)_$$"
SCRATCH="$(libpq_url "${TARGET_ADMIN}" "${SCRATCH_DB}")"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 --no-psqlrc)

if [[ -n "${DUMP_DIR}" ]]; then
    mkdir -p "${DUMP_DIR}"
    WORK="${DUMP_DIR}"
else
    WORK="$(mktemp -d -t yummi-restore-drill-XXXXXX)"
fi

SNAPSHOT=""
SCRATCH_CREATED=0
cleanup() {
    local code=$?
    end_snapshot
    if ((SCRATCH_CREATED)) && ((KEEP == 0)); then
        "${PSQL[@]}" "${TARGET_ADMIN}" -c "DROP DATABASE IF EXISTS \"${SCRATCH_DB}\" WITH (FORCE)" >/dev/null 2>&1 ||
            "${PSQL[@]}" "${TARGET_ADMIN}" -c "DROP DATABASE IF EXISTS \"${SCRATCH_DB}\"" >/dev/null 2>&1 ||
            echo "could not drop the scratch database ${SCRATCH_DB}: drop it by hand" >&2
    fi
    if [[ -z "${DUMP_DIR}" ]] && ((KEEP == 0)); then
        rm -rf "${WORK}"
    fi
    if ((KEEP)); then
        echo "kept: scratch database ${SCRATCH_DB} on the target server, dumps in ${WORK}"
    fi
    exit "${code}"
}
trap cleanup EXIT

step() { echo; echo "==> $*"; }

# Close the transaction that holds the exported snapshot (the coprocess), if it still runs.
end_snapshot() {
    local input="${SNAP[1]:-}"
    if [[ -n "${SNAP_PID:-}" ]] && kill -0 "${SNAP_PID}" 2>/dev/null; then
        [[ -n "${input}" ]] && { printf 'COMMIT;\n\\q\n' >&"${input}"; } 2>/dev/null
        wait "${SNAP_PID}" 2>/dev/null || true
    fi
    return 0
}

# -- versions -----------------------------------------------------------------------------------------------------
server_major="$("${PSQL[@]}" "${SOURCE}" -tAc "SELECT current_setting('server_version_num')::int / 10000")"
client_major="$(pg_dump --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')"
if ((client_major < server_major)); then
    echo "pg_dump ${client_major} is older than the server (${server_major}): install postgresql-client-${server_major}" >&2
    exit 2
fi

# -- what to drill ------------------------------------------------------------------------------------------------
present=()
for schema in ${SCHEMAS}; do
    if [[ "$("${PSQL[@]}" "${SOURCE}" -tAc "SELECT 1 FROM pg_namespace WHERE nspname = '${schema//\'/}'")" == 1 ]]; then
        present+=("${schema}")
    else
        echo "note: schema ${schema} is not in the source; skipped"
    fi
done
((${#present[@]})) || { echo "none of the schemas (${SCHEMAS}) is in the source database" >&2; exit 1; }
schema_list="${present[*]}"
echo "drilling schemas: ${schema_list} (server ${server_major}, pg_dump ${client_major})"

# -- one snapshot for the dumps and the source counts --------------------------------------------------------------
# The exporting transaction stays open (in a coprocess) while every pg_dump and the counts use its snapshot, so a
# live database gives dumps and counts of the same instant.
coproc SNAP { "${PSQL[@]}" "${SOURCE}" -tA 2>&1; }
SNAP_PID=${SNAP_PID:-$!}
echo "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();" >&"${SNAP[1]}"
if read -r -t 30 SNAPSHOT <&"${SNAP[0]}" && [[ "${SNAPSHOT}" =~ ^[0-9A-Fa-f-]+$ ]]; then
    echo "snapshot ${SNAPSHOT}"
else
    echo "warning: could not export a snapshot (${SNAPSHOT:-no answer}); dumps and counts may differ on a busy database" >&2
    SNAPSHOT=""
fi

# Row counts of every table of the drilled schemas, one "schema.table|count" line each, sorted.
count_rows() {
    local url="$1" snapshot="$2" begin="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
    [[ -n "${snapshot}" ]] && begin+=" SET TRANSACTION SNAPSHOT '${snapshot}';"
    "${PSQL[@]}" "${url}" -tA -v schemas="${schema_list}" <<SQL | sort
${begin}
SELECT format('SELECT %L, count(*) FROM %I.%I', schemaname || '.' || tablename, schemaname, tablename)
FROM pg_tables WHERE schemaname = ANY (string_to_array(:'schemas', ' ')) ORDER BY 1
\\gexec
COMMIT;
SQL
}

# Users whose wallet balance differs from the sum of their ledger (must be none).
LEDGER_SQL="SELECT w.user_id FROM payments.wallets w LEFT JOIN (SELECT user_id, SUM(amount_minor) s
FROM payments.wallet_transactions GROUP BY user_id) l USING (user_id) WHERE w.balance_minor <> COALESCE(l.s, 0)"

step "dump (pg_dump -n <schema>, custom format) into ${WORK}"
snapshot_args=()
[[ -n "${SNAPSHOT}" ]] && snapshot_args=(--snapshot="${SNAPSHOT}")
for schema in "${present[@]}"; do
    pg_dump "${SOURCE}" --format=custom --no-owner --no-privileges --schema="${schema}" \
        "${snapshot_args[@]}" --file="${WORK}/${schema}.dump"
    printf '    %-10s %10s bytes\n' "${schema}" "$(wc -c <"${WORK}/${schema}.dump")"
done
count_rows "${SOURCE}" "${SNAPSHOT}" >"${WORK}/source-counts.txt"
# Extensions outside the drilled schemas are not in a schema dump (pg_trgm, which catalog's indexes use, lives
# in `public`): they are created in the scratch database before the restore.
extensions="$("${PSQL[@]}" "${SOURCE}" -tA -F ' ' -c "SELECT e.extname, n.nspname FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1")"
end_snapshot

step "restore into the scratch database ${SCRATCH_DB}"
"${PSQL[@]}" "${TARGET_ADMIN}" -c "CREATE DATABASE \"${SCRATCH_DB}\""
SCRATCH_CREATED=1
while read -r extension ext_schema; do
    [[ -n "${extension}" ]] || continue
    if [[ " ${schema_list} " == *" ${ext_schema} "* ]]; then
        continue # restored with its schema
    fi
    PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" "${SCRATCH}" \
        -c "CREATE SCHEMA IF NOT EXISTS \"${ext_schema}\"" \
        -c "CREATE EXTENSION IF NOT EXISTS \"${extension}\" WITH SCHEMA \"${ext_schema}\""
    echo "    extension ${extension} (in ${ext_schema})"
done <<<"${extensions}"
for schema in "${present[@]}"; do
    pg_restore --dbname="${SCRATCH}" --no-owner --no-privileges --exit-on-error --single-transaction \
        "${WORK}/${schema}.dump"
    echo "    ${schema} restored"
done

step "verify"
failures=0
count_rows "${SCRATCH}" "" >"${WORK}/restored-counts.txt"
tables="$(wc -l <"${WORK}/source-counts.txt")"
if diff -u "${WORK}/source-counts.txt" "${WORK}/restored-counts.txt" >"${WORK}/counts.diff"; then
    echo "    row counts: all ${tables} tables match"
else
    echo "    row counts DIFFER (source vs restored):"
    sed 's/^/      /' "${WORK}/counts.diff"
    failures=$((failures + 1))
fi
awk -F '|' '{ printf "      %-48s %s\n", $1, $2 }' "${WORK}/restored-counts.txt"

for schema in "${present[@]}"; do
    revision="$("${PSQL[@]}" "${SCRATCH}" -tAc "SELECT string_agg(version_num, ',') FROM \"${schema}\".alembic_version" 2>/dev/null || true)"
    echo "    ${schema}: alembic revision ${revision:-none}"
done

if [[ " ${schema_list} " == *" payments "* ]]; then
    has_ledger="$("${PSQL[@]}" "${SCRATCH}" -tAc "SELECT count(*) FROM pg_tables WHERE schemaname = 'payments'
        AND tablename IN ('wallets', 'wallet_transactions')")"
    if [[ "${has_ledger}" == 2 ]]; then
        wallets="$("${PSQL[@]}" "${SCRATCH}" -tAc "SELECT count(*) FROM payments.wallets")"
        off="$("${PSQL[@]}" "${SCRATCH}" -tA -c "${LEDGER_SQL}")"
        if [[ -z "${off}" ]]; then
            echo "    ledger: all ${wallets} wallet balances equal their ledger sums"
        else
            echo "    ledger: $(wc -l <<<"${off}") wallet(s) differ from their ledger sum:"
            head -n 20 <<<"${off}" | sed 's/^/      user_id /'
            source_off="$("${PSQL[@]}" "${SOURCE}" -tA -c "${LEDGER_SQL}" | wc -l)"
            echo "      (the source shows ${source_off} such wallet(s) now: a data problem if it is the same number)"
            failures=$((failures + 1))
        fi
    else
        echo "    ledger: payments.wallets / wallet_transactions not found; check skipped"
    fi
fi

echo
if ((failures)); then
    echo "restore drill: FAIL (${failures} check(s))"
    exit 1
fi
echo "restore drill: PASS (${#present[@]} schemas, ${tables} tables)"
