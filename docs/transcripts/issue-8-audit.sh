#!/bin/bash
# The commands of docs/transcripts/issue-8-audit.md. Start the platform first with the same environment:
#   IOTCLOUD_STATE_DIR=/tmp/audit_tx/state IOTCLOUD_API_PORT=18731 IOTCLOUD_EMBEDDED_MONGODB_PORT=18732 \
#   IOTCLOUD_BROKER=none .venv/bin/iotcloud run
cd "$(dirname "$0")/../.."
export IOTCLOUD_STATE_DIR=/tmp/audit_tx/state IOTCLOUD_API_PORT=18731 IOTCLOUD_EMBEDDED_MONGODB_PORT=18732 IOTCLOUD_BROKER=none IOTCLOUD_LOG_LEVEL=WARNING
API=http://127.0.0.1:18731
IOT=.venv/bin/iotcloud
signup() {  # user -> token
  curl -s -XPOST $API/v1/auth/signup -H 'content-type: application/json' -d "{\"username\":\"$1\",\"password\":\"correct horse\",\"email\":\"$1@example.com\",\"given_name\":\"T\",\"family_name\":\"T\"}" >/dev/null
  CODE=$($IOT outbox --json --to $1@example.com --limit 1 | python3 -c 'import json,sys,re; print(re.search(r"code is (\d+)", json.load(sys.stdin)["body"]).group(1))')
  curl -s -XPOST $API/v1/auth/confirm -H 'content-type: application/json' -d "{\"username\":\"$1\",\"code\":\"$CODE\"}" >/dev/null
  curl -s -XPOST $API/v1/auth/login -H 'content-type: application/json' -d "{\"username\":\"$1\",\"password\":\"correct horse\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
ALICE=$(signup alice); AUDITOR=$(signup ruth)
set -x
curl -s -XPOST $API/v1/devices -H "authorization: Bearer $ALICE" -H 'content-type: application/json' -d '{"name":"kitchen"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["device_id"])' > /tmp/audit_tx/device_id
DEVICE=$(cat /tmp/audit_tx/device_id)
curl -s "$API/v1/devices/kitchen/gpio/3?timeout=1" -H "authorization: Bearer $ALICE"; echo
BEFORE_REISSUE=$(date -u +%Y-%m-%dT%H:%M:%S.%6N)
curl -s -XPOST $API/v1/devices/kitchen/certificate -H "authorization: Bearer $ALICE" -H 'content-type: application/json' -d '{}' -o /dev/null -w '%{http_code}\n'
curl -s -XDELETE $API/v1/devices/kitchen -H "authorization: Bearer $ALICE" -w '%{http_code}\n'
$IOT audit events $DEVICE
$IOT audit state $DEVICE --at $BEFORE_REISSUE
$IOT audit state $DEVICE --revision 3 | grep -E '"revision"|"registered"|"serial"'
$IOT users grant ruth auditor
curl -s "$API/v1/audit/devices/$DEVICE/state?revision=1" -H "authorization: Bearer $AUDITOR" | python3 -m json.tool | head -8
BOB=$(signup bob 2>/dev/null)
curl -s "$API/v1/audit/devices/$DEVICE/events" -H "authorization: Bearer $BOB"; echo
$IOT audit checkpoint
$IOT audit verify; echo "exit code $?"
sqlite3 $IOTCLOUD_STATE_DIR/devicefleet.events.sqlite3 "SELECT rowid, topic, length(state) FROM stored_events ORDER BY rowid"
sqlite3 $IOTCLOUD_STATE_DIR/devicefleet.events.sqlite3 "UPDATE stored_events SET state = CAST(replace(CAST(state AS TEXT), '\"actor\":\"user:alice\"', '\"actor\":\"user:alicf\"') AS BLOB) WHERE rowid = 3"
$IOT audit verify; echo "exit code $?"
curl -s "$API/v1/audit/verify" -H "authorization: Bearer $AUDITOR" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["intact"], [(l["log"], l["broken"] and l["broken"]["message"]) for l in d["logs"]])'
