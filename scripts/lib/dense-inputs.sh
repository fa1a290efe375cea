# shellcheck shell=bash
# The entry-dense inputs of the benchmarks that build `bench/out/dense-*MB.pcap`: the shared
# MySQL, Redis and DNS-over-TCP captures with the most exchanges per megabyte (about 3,500),
# which examples/synth_capture repeats with shifted time and addresses. Sourced by
# scripts/cluster-bench and scripts/store-bench so both measure the same traffic.
dense_inputs() { # PCAPS_DIR -> the paths present, one per line
  local f
  for f in mysql_deepflow_171-mysql-20130 redis_beats_session dns_suricata_tcp-multirequest \
    dns_suricata_bug-1158-many-a dns_zeek_docker-container dns-k8s_deepflow_search-domain-nxdomain; do
    [ -f "$1/$f.pcap" ] && echo "$1/$f.pcap"
  done
  return 0
}
