#!/usr/bin/env bash
# The function's audit lines, one JSON object per alert, from `faas-cli logs` (the watchdog's own lines left
# out). Fails with faas-cli's message and a non-zero status when faas-cli cannot reach the gateway, instead of
# printing nothing, which would read as "no alerts".
#
#   scripts/audit-log.sh [faas-cli logs flags, e.g. --since 1h or --tail] | jq ...
#
# FUNCTION_NAME (default falco-pod-delete) names the function; faas-cli finds the gateway as always
# (OPENFAAS_URL, --gateway, or stack.yml in the current directory). Without --tail it reads what is there and ends.
set -uo pipefail
name=${FUNCTION_NAME:-falco-pod-delete}
follow=--tail=false
for a in "$@"; do case "$a" in --tail | --tail=true) follow= ;; esac; done
# faas-cli writes its errors ("Cannot connect to OpenFaaS on URL: ...") to stdout: a line that is not JSON and
# reads like one ends the output with that message on stderr.
faas-cli logs "$name" $follow --time-format "" "$@" | jq --unbuffered -cR '
  . as $line
  | try (fromjson | select(type == "object" and .audit == true))
    catch (if ($line | test("^(Cannot|cannot|Error|error|unable|Unable)")) then ("faas-cli logs: \($line)\n" | halt_error(1)) else empty end)'
status=("${PIPESTATUS[@]}")
if [ "${status[1]}" != 0 ]; then exit "${status[1]}"; fi
if [ "${status[0]}" != 0 ]; then echo "faas-cli logs failed (exit ${status[0]})" >&2; exit "${status[0]}"; fi
