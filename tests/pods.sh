# Sourced by the test scripts that play a cluster node: "pods" are network namespaces
# ${POD_PREFIX}<pod>-$$ joined by veth pairs (${POD_VETH}p<i>-$$ inside, ${POD_VETH}b<i>-$$
# on the bridge) to bridge br0 in the namespace NODE. Reads the caller's `pods` array and
# `addr` map (pod -> address), in that order.

# pods_up NODE: creates the node, its bridge and every pod.
pods_up() {
  local node=$1 i=0 p ns
  ip netns add "$node"
  ip -n "$node" link set lo up
  ip -n "$node" link add br0 type bridge
  ip -n "$node" link set br0 up
  for p in "${pods[@]}"; do
    i=$((i + 1))
    ns="$POD_PREFIX$p-$$"
    ip netns add "$ns"
    ip link add "${POD_VETH}p$i-$$" type veth peer name "${POD_VETH}b$i-$$"
    ip link set "${POD_VETH}p$i-$$" netns "$ns"
    ip link set "${POD_VETH}b$i-$$" netns "$node"
    ip -n "$node" link set "${POD_VETH}b$i-$$" master br0
    ip -n "$node" link set "${POD_VETH}b$i-$$" up
    ip -n "$ns" addr add "${addr[$p]}/24" dev "${POD_VETH}p$i-$$"
    ip -n "$ns" link set "${POD_VETH}p$i-$$" up
    ip -n "$ns" link set lo up
  done
}

# pods_down NODE: removes what pods_up made (and anything half made).
pods_down() {
  local p
  for p in "${pods[@]}"; do ip netns del "$POD_PREFIX$p-$$" 2>/dev/null; done
  ip netns del "$1" 2>/dev/null
}

# in_pod POD COMMAND…: runs a command inside a pod.
in_pod() { local p=$1; shift; ip netns exec "$POD_PREFIX$p-$$" "$@"; }
