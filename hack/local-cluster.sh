#!/usr/bin/env bash
# hack/local-cluster.sh: a local Kubernetes control plane on loopback where Jobs really run, with
# no Docker, no kind and no cluster: etcd + kube-apiserver + kube-controller-manager (the real Job
# controller and garbage collector) + test/localnode, a development node agent that runs each
# Pod's container as a host process (see hack/README.md; it is not a kubelet).
#
#   hack/local-cluster.sh start        start everything, print: export KUBECONFIG=...
#   eval "$(hack/local-cluster.sh env)"   point kubectl at it (matching kubectl: see status)
#   hack/local-cluster.sh kubectl ...  run the matching kubectl against it
#   hack/local-cluster.sh status       what runs, pids, ports, node readiness
#   hack/local-cluster.sh stop         stop what start started, check its ports are free
#
# Binaries come from hack/setup-envtest.sh (built once from the Go module proxy, cached).
# Everything lives in the work directory: kubeconfig, pki/, etcd/, *.log, *.pid, ports.env,
# node/pods/NAMESPACE_NAME_UID/{container.log,termination-log,volumes/...}, pvc/CLAIM/.
# `start` wipes the work directory first: every start is a fresh, empty cluster.
#
# Environment knobs:
#   LOCAL_CLUSTER_DIR        work directory (default ${TMPDIR:-/tmp}/fragile-local-cluster)
#   LOCAL_CLUSTER_TIMEOUT    seconds to wait for each component to be ready (default 60)
#   LOCAL_CLUSTER_APISERVER_PORT, LOCAL_CLUSTER_ETCD_PORT, LOCAL_CLUSTER_ETCD_PEER_PORT,
#   LOCAL_CLUSTER_CONTROLLER_MANAGER_PORT
#                            fixed ports (must be free); unset: the first free port from
#                            6443, 2379, 2380 and 10257 upwards
#   LOCAL_CLUSTER_CONTROLLERS  kube-controller-manager --controllers
#                            (default job,garbagecollector,serviceaccount-token,namespace)
#   LOCAL_CLUSTER_NODE=0     do not start the node agent (a control plane where Pods stay Pending)
#   LOCAL_NODE_IMAGE_MAP     IMAGE=BINARY[,IMAGE=BINARY...]: images the agent may run and the host
#                            binary that stands for each; Pods of other images are refused
#   LOCAL_NODE_NAME          Node name (default local-node)
#   LOCAL_NODE_PVC_ROOT      PVC CLAIM is the directory LOCAL_NODE_PVC_ROOT/CLAIM (default DIR/pvc)
#   LOCAL_NODE_BIN           a prebuilt test/localnode binary (default: go build into DIR/bin)
#   LOCAL_NODE_ARGS          extra flags for the agent (word-split)
#   LOCAL_CLUSTER_OWNER_PID  stop the cluster by itself once this process is gone (tests and
#                            scripts that may be killed before they can run stop)
#   KUBEBUILDER_ASSETS       used when it has etcd, kube-apiserver and kube-controller-manager;
#                            otherwise hack/setup-envtest.sh is run with WITH_CONTROLLER_MANAGER=1
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIR="${LOCAL_CLUSTER_DIR:-${TMPDIR:-/tmp}/fragile-local-cluster}"
DIR="${DIR%/}"
TIMEOUT="${LOCAL_CLUSTER_TIMEOUT:-60}"
NODE_NAME="${LOCAL_NODE_NAME:-local-node}"
MARKER=".fragile-local-cluster"
COMPONENTS=(etcd apiserver controller-manager localnode) # start order; stop goes backwards

log() { echo "local-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# --- processes -----------------------------------------------------------------------------

pid_of() { [[ -f "$DIR/$1.pid" ]] && cat "$DIR/$1.pid" || true; }

# alive NAME: its recorded pid runs and is ours (its command line names the work directory,
# which every command started here does), so a recycled pid is never mistaken for it.
alive() {
  local pid
  pid=$(pid_of "$1")
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$DIR/"
}

launch() { # launch NAME COMMAND...: in the background, output to DIR/NAME.log, pid to DIR/NAME.pid
  local name=$1; shift
  # 9>&-: the servers must not inherit the start lock (cmd_start), or it would outlive the start.
  "$@" < /dev/null >> "$DIR/$name.log" 2>&1 9>&- &
  echo $! > "$DIR/$name.pid"
}

stop_one() { # stop_one NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS
  local name=$1 wait=${2:-15} pid i
  pid=$(pid_of "$name")
  if alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait * 10; i++)); do
      [[ -d "/proc/$pid" ]] || break
      sleep 0.1
    done
    if [[ -d "/proc/$pid" ]]; then
      log "$name (pid $pid) ignored SIGTERM for ${wait}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$DIR/$name.pid"
}

# Pod processes run in their own process groups with their pid in node/pods/*/pid while they
# run; the agent stops them itself, this catches what a killed agent left behind.
kill_pod_leftovers() {
  local f pid
  for f in "$DIR"/node/pods/*/pid; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    if [[ -n "$pid" && -d "/proc/$pid" ]] && tr '\0' ' ' < "/proc/$pid/environ" 2>/dev/null | grep -qF -- "$DIR/node/pods/"; then
      log "killing leftover pod process group $pid ($f)"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

# --- ports ---------------------------------------------------------------------------------

port_busy() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

CHOSEN=" "
pick_port() { # pick_port OUT USER_VAR DEFAULT: the user's fixed port (must be free) or the first free one
  local p=${!2:-}
  if [[ -n "$p" ]]; then
    ! port_busy "$p" || die "port $p (from $2) is already in use"
  else
    p=$3
    while port_busy "$p" || [[ "$CHOSEN" == *" $p "* ]]; do
      p=$((p + 1))
      ((p < $3 + 200)) || die "no free port in $3..$p"
    done
  fi
  CHOSEN+="$p "
  printf -v "$1" '%s' "$p"
}

# --- binaries ------------------------------------------------------------------------------

find_assets() {
  local a=${KUBEBUILDER_ASSETS:-}
  if [[ -z "$a" || ! -x "$a/kube-controller-manager" || ! -x "$a/kube-apiserver" || ! -x "$a/etcd" ]]; then
    a=$(WITH_CONTROLLER_MANAGER=1 WITH_KUBECTL=1 "$HERE/setup-envtest.sh" | sed -n 's/^export KUBEBUILDER_ASSETS=//p')
  fi
  [[ -x "$a/kube-controller-manager" ]] || die "no kube-controller-manager in $a (hack/setup-envtest.sh failed?)"
  ASSETS=$a
}

kubectl_bin() {
  if [[ -n "${ASSETS:-}" && -x "$ASSETS/kubectl" ]]; then echo "$ASSETS/kubectl"
  elif [[ -f "$DIR/kubectl.path" && -x "$(cat "$DIR/kubectl.path")" ]]; then cat "$DIR/kubectl.path"
  else command -v kubectl || die "no kubectl: run WITH_KUBECTL=1 hack/setup-envtest.sh"
  fi
}

# --- readiness -----------------------------------------------------------------------------

fail_start() { # fail_start NAME MESSAGE: show the log's tail, stop everything, exit 1
  log "$2"
  log "last lines of $DIR/$1.log:"
  tail -n 25 "$DIR/$1.log" >&2 || true
  log "stopping what was started (logs stay in $DIR)"
  stop_all > /dev/null 2>&1 || true
  exit 1
}

wait_ready() { # wait_ready NAME CHECK-COMMAND...
  local name=$1 deadline=$((SECONDS + TIMEOUT)); shift
  while ! "$@" > /dev/null 2>&1; do
    alive "$name" || fail_start "$name" "$name exited during startup; see $DIR/$name.log"
    ((SECONDS < deadline)) || fail_start "$name" "$name not ready after ${TIMEOUT}s; see $DIR/$name.log"
    sleep 0.25
  done
}

api_get() { curl -fsS --max-time 2 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(cat "$DIR/token")" "https://127.0.0.1:$APISERVER_PORT$1"; }
etcd_ready() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() { [[ "$(api_get /readyz)" == ok ]]; }
kcm_ready() { [[ "$(curl -fsSk --max-time 2 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz")" == ok ]]; }
node_ready() {
  [[ "$("$KUBECTL" --kubeconfig "$DIR/kubeconfig" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# --- subcommands ---------------------------------------------------------------------------

any_alive() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" && return 0; done
  return 1
}

stop_all() {
  [[ -d "$DIR" ]] || { log "nothing in $DIR"; return 0; }
  local i c
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[i]}
    if alive "$c"; then log "stopping $c (pid $(pid_of "$c"))"; fi
  done
  if [[ "$(pid_of watchdog)" != "$$" ]]; then stop_one watchdog 5; fi
  # The agent first, while the API server can still take its last Pod statuses; then the
  # controller manager and the API server together; etcd last.
  stop_one localnode 20
  kill_pod_leftovers
  local w1 w2
  stop_one controller-manager 20 &
  w1=$!
  stop_one apiserver 20 &
  w2=$!
  wait "$w1" "$w2" # not a bare wait: after a failed start, this shell's children include etcd
  stop_one etcd 20
  # Nothing started here may still listen.
  local busy=()
  if [[ -f "$DIR/ports.env" ]]; then
    # shellcheck disable=SC1091
    source "$DIR/ports.env"
    for p in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$CONTROLLER_MANAGER_PORT"; do
      port_busy "$p" && busy+=("$p")
    done
  fi
  if ((${#busy[@]})); then
    log "ports still in use after stop: ${busy[*]}"
    ss -ltnp 2> /dev/null | grep -E ":($(IFS='|'; echo "${busy[*]}"))\b" >&2 || true
    return 1
  fi
  log "stopped; ports free; logs kept in $DIR"
}

# watch_owner PID: the watchdog started for LOCAL_CLUSTER_OWNER_PID.
watch_owner() {
  while kill -0 "$1" 2> /dev/null; do sleep 1; done
  log "owner process $1 is gone: stopping the cluster"
  stop_all
  rm -f "$DIR/watchdog.pid"
}

cmd_start() {
  if [[ -d "$DIR" ]] && any_alive; then
    die "already running in $DIR (see: $0 status); run: $0 stop"
  fi
  if [[ -d "$DIR" && -n "$(ls -A "$DIR")" && ! -f "$DIR/$MARKER" ]]; then
    die "$DIR is not empty and was not made by $0; refusing to wipe it (set LOCAL_CLUSTER_DIR)"
  fi
  command -v openssl > /dev/null || die "openssl is needed for the cluster's certificates"
  command -v curl > /dev/null || die "curl is needed for readiness checks"
  find_assets
  rm -rf "$DIR"
  mkdir -p "$DIR/pki" "$DIR/bin" "$DIR/node"
  touch "$DIR/$MARKER"
  KUBECTL=$(kubectl_bin)
  echo "$KUBECTL" > "$DIR/kubectl.path"

  # Two starts at once (go test runs test/e2e and test/localnode side by side) would both
  # find 6443 free before either server binds it: choosing the ports and starting the
  # servers that bind them is one critical section on the machine.
  exec 9> "${TMPDIR:-/tmp}/fragile-local-cluster.start.lock"
  flock -w 600 9 || die "another local cluster has been starting for 10 minutes (lock ${TMPDIR:-/tmp}/fragile-local-cluster.start.lock)"
  pick_port APISERVER_PORT LOCAL_CLUSTER_APISERVER_PORT 6443
  pick_port ETCD_PORT LOCAL_CLUSTER_ETCD_PORT 2379
  pick_port ETCD_PEER_PORT LOCAL_CLUSTER_ETCD_PEER_PORT 2380
  pick_port CONTROLLER_MANAGER_PORT LOCAL_CLUSTER_CONTROLLER_MANAGER_PORT 10257
  cat > "$DIR/ports.env" << EOF
APISERVER_PORT=$APISERVER_PORT
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
CONTROLLER_MANAGER_PORT=$CONTROLLER_MANAGER_PORT
NODE_STARTED=$([[ "${LOCAL_CLUSTER_NODE:-1}" == 0 ]] && echo 0 || echo 1)
EOF

  # The node agent: built from this checkout (seconds once the Go build cache is warm).
  local node_bin=${LOCAL_NODE_BIN:-}
  if [[ "${LOCAL_CLUSTER_NODE:-1}" != 0 && -z "$node_bin" ]]; then
    node_bin="$DIR/bin/localnode"
    log "building test/localnode"
    (cd "$REPO" && go build -o "$node_bin" ./test/localnode) || die "go build ./test/localnode failed"
  fi

  # Certificates: a CA, the API server's serving certificate for loopback, the service-account key.
  local pki=$DIR/pki
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fragile-local-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2> /dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2> /dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2> /dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2> /dev/null
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/token"
  echo "$(cat "$DIR/token"),admin,admin,system:masters" > "$DIR/tokens.csv"
  chmod 600 "$DIR/token" "$DIR/tokens.csv" "$pki"/*.key

  cat > "$DIR/kubeconfig" << EOF
apiVersion: v1
kind: Config
clusters:
- name: fragile-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: admin
  user:
    token: $(cat "$DIR/token")
contexts:
- name: fragile-local
  context: {cluster: fragile-local, user: admin, namespace: default}
current-context: fragile-local
EOF
  chmod 600 "$DIR/kubeconfig"

  local t0=$SECONDS
  if [[ -n "${LOCAL_CLUSTER_OWNER_PID:-}" ]]; then
    kill -0 "$LOCAL_CLUSTER_OWNER_PID" 2> /dev/null || die "LOCAL_CLUSTER_OWNER_PID $LOCAL_CLUSTER_OWNER_PID is not running"
    # The work directory is an argument so that alive() recognises the watchdog.
    launch watchdog env LOCAL_CLUSTER_DIR="$DIR" bash "$HERE/local-cluster.sh" __watch "$LOCAL_CLUSTER_OWNER_PID" "$DIR/"
  fi
  # etcd: throwaway data, so no fsync.
  launch etcd "$ASSETS/etcd" --name local --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync
  wait_ready etcd etcd_ready

  # kube-apiserver: token authentication, RBAC. The ServiceAccount admission plugin is off so
  # Pods get no projected token volume (the node agent would refuse it) and need no
  # ServiceAccount object.
  launch apiserver "$ASSETS/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --endpoint-reconciler-type none \
    --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --cert-dir "$pki" \
    --token-auth-file "$DIR/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.key" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount
  wait_ready apiserver apiserver_ready

  # kube-controller-manager: the real Job controller and garbage collector.
  launch controller-manager "$ASSETS/kube-controller-manager" \
    --kubeconfig "$DIR/kubeconfig" \
    --authentication-kubeconfig "$DIR/kubeconfig" --authorization-kubeconfig "$DIR/kubeconfig" \
    --controllers "${LOCAL_CLUSTER_CONTROLLERS:-job,garbagecollector,serviceaccount-token,namespace}" \
    --leader-elect=false \
    --use-service-account-credentials=false \
    --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" \
    --cert-dir "$pki/controller-manager"
  wait_ready controller-manager kcm_ready
  exec 9>&- # every chosen port is bound now: the next start may choose

  if [[ "${LOCAL_CLUSTER_NODE:-1}" != 0 ]]; then
    local args=(--kubeconfig "$DIR/kubeconfig" --node-name "$NODE_NAME" --root-dir "$DIR/node"
      --pvc-root "${LOCAL_NODE_PVC_ROOT:-$DIR/pvc}")
    [[ -z "${LOCAL_NODE_IMAGE_MAP:-}" ]] || args+=(--image-map "$LOCAL_NODE_IMAGE_MAP")
    # shellcheck disable=SC2206
    args+=(${LOCAL_NODE_ARGS:-})
    launch localnode "$node_bin" "${args[@]}"
    wait_ready localnode node_ready
  fi

  log "ready in $((SECONDS - t0))s: apiserver https://127.0.0.1:$APISERVER_PORT, node $NODE_NAME; logs in $DIR"
  log "kubectl: $KUBECTL (or: $0 kubectl get pods -A)"
  echo "export KUBECONFIG=$DIR/kubeconfig"
}

cmd_status() {
  local c n=0 running=0 pid
  [[ -f "$DIR/ports.env" ]] && source "$DIR/ports.env"
  declare -A port=([etcd]=${ETCD_PORT:-} [apiserver]=${APISERVER_PORT:-} [controller-manager]=${CONTROLLER_MANAGER_PORT:-} [localnode]=)
  for c in "${COMPONENTS[@]}"; do
    if [[ "$c" == localnode && "${NODE_STARTED:-1}" == 0 ]]; then
      printf '%-19s not started (LOCAL_CLUSTER_NODE=0)\n' "$c"
      continue
    fi
    ((++n))
    pid=$(pid_of "$c")
    if alive "$c"; then
      ((++running))
      printf '%-19s running  pid %-7s %-11s log %s\n' "$c" "$pid" "${port[$c]:+port ${port[$c]}}" "$DIR/$c.log"
    else
      printf '%-19s stopped\n' "$c"
    fi
  done
  if alive apiserver; then
    KUBECTL=$(kubectl_bin)
    echo "kubeconfig          $DIR/kubeconfig"
    echo "kubectl             $KUBECTL"
    "$KUBECTL" --kubeconfig "$DIR/kubeconfig" get nodes 2>&1 | sed 's/^/  /'
  fi
  ((running == n)) && return 0
  ((running == 0)) && return 3
  return 1
}

cmd_env() {
  [[ -f "$DIR/kubeconfig" ]] && alive apiserver || die "not running in $DIR; run: $0 start"
  echo "export KUBECONFIG=$DIR/kubeconfig"
}

case "${1:-}" in
start) cmd_start ;;
stop) stop_all ;;
status) cmd_status ;;
env) cmd_env ;;
__watch) watch_owner "$2" ;;
kubectl)
  shift
  [[ -f "$DIR/kubeconfig" ]] || die "not started; run: $0 start"
  exec "$(kubectl_bin)" --kubeconfig "$DIR/kubeconfig" "$@"
  ;;
*)
  echo "usage: $0 start|stop|status|env|kubectl ARGS..." >&2
  exit 2
  ;;
esac
