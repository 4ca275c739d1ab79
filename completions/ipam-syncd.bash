# bash completion for ipam-syncd(8).
_ipam_syncd()
{
	local cur prev
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--config|--check-config)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--user)
		COMPREPLY=($(compgen -u -- "$cur"))
		return ;;
	esac
	COMPREPLY=($(compgen -W '--config --user --rebuild --migrate
		--check-config --print-example-config --version --help' -- "$cur"))
}
complete -F _ipam_syncd ipam-syncd
