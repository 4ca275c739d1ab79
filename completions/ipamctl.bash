# bash completion for ipamctl(1): its commands and each command's options,
# as "ipamctl COMMAND --help" lists them.
_ipamctl()
{
	local cur prev word command="" i
	local commands="ls show reserve quarantine release allocate subnets
		conflicts dead-letters unplaced stats export import populate
		request help"
	local global="--url --token-file --vrf --json --requester --timeout --help"
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		case $word in
		--url|--token-file|--vrf|--requester|--timeout) ((i++)) ;;
		-*) ;;
		*) command=$word; break ;;
		esac
	done
	case $prev in
	--token-file|--servers|--subnets)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--status)
		COMPREPLY=($(compgen -W 'available allocated reserved quarantine' -- "$cur"))
		return ;;
	--type)
		COMPREPLY=($(compgen -W 'static dhcp' -- "$cur"))
		return ;;
	--url|--vrf|--requester|--timeout|--limit|--subnet|--sort|--query|-q|--changed-since|\
	--description|-d|--reason|-r|-n|--if-match|--kind)
		return ;;
	--count)
		# A number for allocate; for ls a flag, followed by more options.
		[[ $command == allocate ]] && return ;;
	esac
	local options
	case $command in
	"") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")); return ;;
	ls) options="--status --type --subnet --active --inactive --query -q
		--changed-since --sort --limit --all --count" ;;
	export) options="--status --type --subnet --active --inactive --query -q
		--changed-since --sort --csv" ;;
	reserve) options="--description -d --if-available --if-match" ;;
	quarantine) options="--reason -r --if-available --if-match" ;;
	release) options="--if-match" ;;
	allocate) options="--count -n --description -d" ;;
	conflicts) options="--kind" ;;
	dead-letters) options="--limit --all --raw" ;;
	import|populate) options="--servers --subnets --dry-run" ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
	*) options="" ;;
	esac
	COMPREPLY=($(compgen -W "$options $global" -- "$cur"))
}
complete -F _ipamctl ipamctl
