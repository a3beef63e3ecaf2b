# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ipmpd_global_optspecs
    string join \n h/help V/version
end

function __fish_ipmpd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ipmpd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ipmpd_using_subcommand
    set -l cmd (__fish_ipmpd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ipmpd -n "__fish_ipmpd_needs_command" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -s V -l version -d 'Print version'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "probe" -d 'Probe TARGET from IFACE like ping, with kernel-stamped round trips (XDP receive minus TC transmit) beside the userspace ones; link changes of IFACE are shown as they happen'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "watch" -d 'Watch the carrier of interfaces through the link-state mirror and print every change'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "run" -d 'Run the daemon: track the group file\'s interfaces, detect failures and repairs'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "stat" -d 'ipmpstat: groups (-g), interfaces (-i), probe targets (-t) or data addresses (-a)'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "offline" -d 'Take an interface out of service (if_mpadm -d); refused when no other usable member would remain'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "online" -d 'Return an offlined interface to service (if_mpadm -r)'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "check-config" -d 'Validate /etc/default/mpathd and the group file; print every problem with file and line'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "events" -d 'List the event catalogue, or show one event in full'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "features" -d 'Show what the kernel lets ipmpd use: TCX or clsact, the carrier hook or the poll, and where XDP runs on the interfaces given (attaches, reports, detaches)'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "detach" -d 'Take ipmpd\'s programs off every interface and remove its pins (a stopped daemon leaves them attached for the next start to adopt)'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, ...) for ipmpd, ipmpstat or if_mpadm'
complete -c ipmpd -n "__fish_ipmpd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -s c -l count -d 'Number of probes (default: until interrupted)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -s i -l interval -d 'Milliseconds between probes' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l timeout -d 'Milliseconds to wait for a reply before counting a probe lost (default: twice the interval, at least 1000)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l source -d 'Test address to send from (default: the interface\'s first IPv4 address, or its IPv6 link-local one)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l link-poll-us -d 'Shortest carrier poll interval in microseconds (used when the kernel refuses the carrier hook). Default: 1 % of the shortest failure detection time, at least 1000' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l link-poll-cpu -d 'Most of one core, in percent, the carrier poll may use; its interval grows beyond --link-poll-us to stay inside it (100: a fixed interval whatever it costs)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l instance -d 'Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l tc-attach -d 'How TC programs are attached: probe the kernel (auto), or force TCX links or clsact' -r -f -a "auto\t'TCX where the kernel has it (probed), else clsact'
tcx\t'TCX links; fails on kernels without TCX'
clsact\t'A clsact qdisc and a netlink filter, even where TCX exists'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l carrier -d 'Where link state comes from: the fentry hook where the kernel allows it (auto), or the carrier poll' -r -f -a "auto\t'The fentry hook where the kernel allows it, else the poll'
poll\t'The carrier poll and rtnetlink notifications, even where the hook would load'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l reply-hook -d 'Where probe replies are taken: TC ingress on veth where the kernel has TCX and XDP elsewhere (auto), XDP everywhere, or TC ingress everywhere (needs TCX)' -r -f -a "auto\t'TC ingress on veth where the kernel has TCX, XDP everywhere else'
xdp\t'XDP on every interface: native in drivers that have it (the earliest time stamp, before the kernel builds a packet buffer), generic elsewhere'
tc\t'A TCX link on the ingress hook of every interface (Linux 6.6 and later)'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -l json -d 'One JSON object per line'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l duration-ms -d 'Stop after this many milliseconds (default: until interrupted)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l link-poll-us -d 'Shortest carrier poll interval in microseconds (used when the kernel refuses the carrier hook). Default: 1 % of the shortest failure detection time, at least 1000' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l link-poll-cpu -d 'Most of one core, in percent, the carrier poll may use; its interval grows beyond --link-poll-us to stay inside it (100: a fixed interval whatever it costs)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l instance -d 'Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l tc-attach -d 'How TC programs are attached: probe the kernel (auto), or force TCX links or clsact' -r -f -a "auto\t'TCX where the kernel has it (probed), else clsact'
tcx\t'TCX links; fails on kernels without TCX'
clsact\t'A clsact qdisc and a netlink filter, even where TCX exists'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l carrier -d 'Where link state comes from: the fentry hook where the kernel allows it (auto), or the carrier poll' -r -f -a "auto\t'The fentry hook where the kernel allows it, else the poll'
poll\t'The carrier poll and rtnetlink notifications, even where the hook would load'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l reply-hook -d 'Where probe replies are taken: TC ingress on veth where the kernel has TCX and XDP elsewhere (auto), XDP everywhere, or TC ingress everywhere (needs TCX)' -r -f -a "auto\t'TC ingress on veth where the kernel has TCX, XDP everywhere else'
xdp\t'XDP on every interface: native in drivers that have it (the earliest time stamp, before the kernel builds a packet buffer), generic elsewhere'
tc\t'A TCX link on the ingress hook of every interface (Linux 6.6 and later)'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -l json -d 'One JSON object per line'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l defaults -d 'in.mpathd\'s defaults file' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l config -d 'The group file' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l instance -d 'Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/, so several daemons can run side by side' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l link-poll-us -d 'Shortest carrier poll interval in microseconds (used when the kernel refuses the carrier hook). Default: 1 % of the shortest failure detection time, at least 1000' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l link-poll-cpu -d 'Most of one core, in percent, the carrier poll may use; its interval grows beyond --link-poll-us to stay inside it (100: a fixed interval whatever it costs)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l tc-attach -d 'How TC programs are attached: probe the kernel (auto), or force TCX links or clsact' -r -f -a "auto\t'TCX where the kernel has it (probed), else clsact'
tcx\t'TCX links; fails on kernels without TCX'
clsact\t'A clsact qdisc and a netlink filter, even where TCX exists'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l carrier -d 'Where link state comes from: the fentry hook where the kernel allows it (auto), or the carrier poll' -r -f -a "auto\t'The fentry hook where the kernel allows it, else the poll'
poll\t'The carrier poll and rtnetlink notifications, even where the hook would load'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l reply-hook -d 'Where probe replies are taken: TC ingress on veth where the kernel has TCX and XDP elsewhere (auto), XDP everywhere, or TC ingress everywhere (needs TCX)' -r -f -a "auto\t'TC ingress on veth where the kernel has TCX, XDP everywhere else'
xdp\t'XDP on every interface: native in drivers that have it (the earliest time stamp, before the kernel builds a packet buffer), generic elsewhere'
tc\t'A TCX link on the ingress hook of every interface (Linux 6.6 and later)'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l rt-priority -d 'Run the probing loop and the link watcher SCHED_FIFO at priority N (1-99): detection keeps its pace with every core busy. Needs CAP_SYS_NICE at start (root has it) or an RLIMIT_RTPRIO of at least N; a refusal is reported and the daemon probes at normal priority' -r -f
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l nice -d 'Nice value of the probing loop and the link watcher when they do not run real-time (-20 to 19; 0 leaves them as started): ahead of the machine\'s normal work, which at equal weight can hold a waking loop a few milliseconds past its deadline. Needs CAP_SYS_NICE at start (root has it) or a matching RLIMIT_NICE; a refusal is reported and probing goes on' -r -f
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l slice-us -d 'Time slice of the probing loop and the link watcher when they do not run real-time, in microseconds (100 to 100000; 0 leaves the kernel\'s): under EEVDF (Linux 6.12 and later) a waking thread with a shorter slice than the running one preempts it sooner. Needs no privilege; older kernels have no such setting, which is reported' -r -f
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l socket -d 'Control socket (default /run/ipmpd/ipmpd.sock, or /run/ipmpd/INSTANCE.sock)' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l metrics -d 'Serve Prometheus metrics on ADDR (default 127.0.0.1:9870 when given without a value)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l admin-group -d 'Members of this group may offline and online interfaces through the control socket, besides root (judged on the credentials they connected with)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l json -d 'Print events and decisions as JSON lines on standard output'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l json-probes -d 'With --json, also print a line for every probe answered or lost (`ipmpd stat -p` streams them from a running daemon without this)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -l reset -d 'Start from scratch: detach the programs and drop the maps a previous ipmpd pinned, instead of adopting them (which disturbs no packet). Only at start: a reload never resets'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s o -d 'Fields to print, comma-separated, case-insensitive, or `all`' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -l socket -d 'The daemon\'s control socket' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s g -d 'Groups: GROUP GROUPNAME STATE FDT INTERFACES'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s i -d 'Interfaces: INTERFACE ACTIVE GROUP FLAGS LINK PROBE STATE'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s t -d 'Probe targets: INTERFACE MODE TESTADDR TARGETS'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s a -d 'Data addresses: ADDRESS STATE GROUP INBOUND OUTBOUND'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s p -d 'Probes as they happen, until interrupted: TIME INTERFACE PROBE NETRTT RTT RTTAVG RTTDEV TARGET'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s d -d 'The datapath (ipmpd\'s own): kernel, TC attach mode, link-state source and why'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s r -d 'What was refused (ipmpd\'s own): SOURCE INTERFACE REASON COUNT, for probe replies refused by the XDP program or the daemon and for control-socket connections'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s n -d 'Numeric output (ipmpd prints addresses numerically anyway)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s P -d 'Parsable output: no header, fields separated by `:` (needs -o)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -l json -d 'JSON output'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand stat" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand offline" -l socket -d 'The daemon\'s control socket' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand offline" -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand offline" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand online" -l socket -d 'The daemon\'s control socket' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand online" -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand online" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand check-config" -l defaults -d 'in.mpathd\'s defaults file' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand check-config" -l config -d 'The group file' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -l socket -d 'The daemon\'s control socket' -r -F
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -l json -d 'JSON output'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -l follow -d 'Follow the running daemon\'s events as they happen, until interrupted'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -l journal-catalog -d 'Print the journald message catalogue (`/usr/lib/systemd/catalog/ipmpd.catalog`) that lets `journalctl -x` explain every event'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand events" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l link-poll-us -d 'Shortest carrier poll interval in microseconds (used when the kernel refuses the carrier hook). Default: 1 % of the shortest failure detection time, at least 1000' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l link-poll-cpu -d 'Most of one core, in percent, the carrier poll may use; its interval grows beyond --link-poll-us to stay inside it (100: a fixed interval whatever it costs)' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l instance -d 'Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l tc-attach -d 'How TC programs are attached: probe the kernel (auto), or force TCX links or clsact' -r -f -a "auto\t'TCX where the kernel has it (probed), else clsact'
tcx\t'TCX links; fails on kernels without TCX'
clsact\t'A clsact qdisc and a netlink filter, even where TCX exists'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l carrier -d 'Where link state comes from: the fentry hook where the kernel allows it (auto), or the carrier poll' -r -f -a "auto\t'The fentry hook where the kernel allows it, else the poll'
poll\t'The carrier poll and rtnetlink notifications, even where the hook would load'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l reply-hook -d 'Where probe replies are taken: TC ingress on veth where the kernel has TCX and XDP elsewhere (auto), XDP everywhere, or TC ingress everywhere (needs TCX)' -r -f -a "auto\t'TC ingress on veth where the kernel has TCX, XDP everywhere else'
xdp\t'XDP on every interface: native in drivers that have it (the earliest time stamp, before the kernel builds a packet buffer), generic elsewhere'
tc\t'A TCX link on the ingress hook of every interface (Linux 6.6 and later)'"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -l json -d 'One JSON object'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand features" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand detach" -l instance -d 'Instance name (pins under /sys/fs/bpf/ipmpd/INSTANCE/); default: the default instance' -r
complete -c ipmpd -n "__fish_ipmpd_using_subcommand detach" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand completions" -l program -d 'The program to complete: ipmpd, or its other names ipmpstat and if_mpadm' -r -f -a "ipmpd\t''
ipmpstat\t''
if_mpadm\t''"
complete -c ipmpd -n "__fish_ipmpd_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "probe" -d 'Probe TARGET from IFACE like ping, with kernel-stamped round trips (XDP receive minus TC transmit) beside the userspace ones; link changes of IFACE are shown as they happen'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "watch" -d 'Watch the carrier of interfaces through the link-state mirror and print every change'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "run" -d 'Run the daemon: track the group file\'s interfaces, detect failures and repairs'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "stat" -d 'ipmpstat: groups (-g), interfaces (-i), probe targets (-t) or data addresses (-a)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "offline" -d 'Take an interface out of service (if_mpadm -d); refused when no other usable member would remain'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "online" -d 'Return an offlined interface to service (if_mpadm -r)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "check-config" -d 'Validate /etc/default/mpathd and the group file; print every problem with file and line'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "events" -d 'List the event catalogue, or show one event in full'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "features" -d 'Show what the kernel lets ipmpd use: TCX or clsact, the carrier hook or the poll, and where XDP runs on the interfaces given (attaches, reports, detaches)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "detach" -d 'Take ipmpd\'s programs off every interface and remove its pins (a stopped daemon leaves them attached for the next start to adopt)'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, ...) for ipmpd, ipmpstat or if_mpadm'
complete -c ipmpd -n "__fish_ipmpd_using_subcommand help; and not __fish_seen_subcommand_from probe watch run stat offline online check-config events features detach completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
