complete -c ipmpstat -s o -d 'Fields to print, comma-separated, case-insensitive, or `all`' -r
complete -c ipmpstat -l socket -d 'The daemon\'s control socket' -r -F
complete -c ipmpstat -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c ipmpstat -s g -d 'Groups: GROUP GROUPNAME STATE FDT INTERFACES'
complete -c ipmpstat -s i -d 'Interfaces: INTERFACE ACTIVE GROUP FLAGS LINK PROBE STATE'
complete -c ipmpstat -s t -d 'Probe targets: INTERFACE MODE TESTADDR TARGETS'
complete -c ipmpstat -s a -d 'Data addresses: ADDRESS STATE GROUP INBOUND OUTBOUND'
complete -c ipmpstat -s p -d 'Probes as they happen, until interrupted: TIME INTERFACE PROBE NETRTT RTT RTTAVG RTTDEV TARGET'
complete -c ipmpstat -s d -d 'The datapath (ipmpd\'s own): kernel, TC attach mode, link-state source and why'
complete -c ipmpstat -s r -d 'What was refused (ipmpd\'s own): SOURCE INTERFACE REASON COUNT, for probe replies refused by the XDP program or the daemon and for control-socket connections'
complete -c ipmpstat -s n -d 'Numeric output (ipmpd prints addresses numerically anyway)'
complete -c ipmpstat -s P -d 'Parsable output: no header, fields separated by `:` (needs -o)'
complete -c ipmpstat -l json -d 'JSON output'
complete -c ipmpstat -s h -l help -d 'Print help'
complete -c ipmpstat -s V -l version -d 'Print version'
