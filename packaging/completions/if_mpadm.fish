complete -c if_mpadm -s d -d 'Offline the interface' -r
complete -c if_mpadm -s r -d 'Online the interface' -r
complete -c if_mpadm -l socket -d 'The daemon\'s control socket' -r -F
complete -c if_mpadm -l instance -d 'The daemon\'s instance name (socket /run/ipmpd/INSTANCE.sock)' -r
complete -c if_mpadm -s h -l help -d 'Print help'
complete -c if_mpadm -s V -l version -d 'Print version'
