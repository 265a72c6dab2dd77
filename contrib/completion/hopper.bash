# bash completion for hopper(1): commands, flags, their values, and the
# sources' and sinks' names and settings. All of these are read from the
# help of the hopper being completed, so that they follow its version;
# installed by `make install` as share/bash-completion/completions/hopper.
# shellcheck shell=bash

# _hopper_help HOPPER ARGS...: the help text, with no error on the terminal.
_hopper_help() {
	"$@" 2>/dev/null
}

# _hopper_usage HOPPER ARGS...: the help text, or the usage a command
# prints on stderr when it has no --help of its own.
_hopper_usage() {
	"$@" 2>&1
}

# _hopper_drivers HOPPER sources|sinks: one "name:" or "name://" a line,
# "://" for the drivers whose first setting is a URL.
_hopper_drivers() {
	_hopper_help "$1" help "$2" | awk '
		/^[a-z][a-z0-9_]*: / { name = substr($1, 1, length($1) - 1); next }
		name != "" && /^[ \t]+[a-z_]+=/ {
			print name (($1 ~ /^url=/) ? "://" : ":"); name = "" }'
}

# _hopper_settings HOPPER sources|sinks [NAME]: each setting as "key=",
# of driver NAME only when it is given.
_hopper_settings() {
	_hopper_help "$1" help "$2" | awk -v want="$3" '
		/^[a-z][a-z0-9_]*: / { name = substr($1, 1, length($1) - 1); next }
		/^[ \t]+[a-z_]+=/ && (want == "" || want == name) {
			sub(/=.*/, "=", $1); print $1 }' | sort -u
}

_hopper() {
	local line cur prev cmd i
	local -a words
	# Words split at blanks only: COMP_WORDS also splits at ':' and '=',
	# which would cut jsonl:FILE and KEY=VALUE in two.
	if [ -n "${COMP_LINE-}" ]; then
		line=${COMP_LINE:0:${COMP_POINT:-${#COMP_LINE}}}
		read -ra words <<<"$line"
		if [[ $line =~ [[:space:]]$ ]]; then
			words+=("")
		fi
	else
		words=("${COMP_WORDS[@]:0:COMP_CWORD+1}")
	fi
	local n=${#words[@]}
	cur=${words[n - 1]}
	prev=""
	[ "$n" -ge 2 ] && prev=${words[n - 2]}
	local hopper=${words[0]}
	hopper=${hopper/#\~/$HOME}
	COMPREPLY=()

	if [ "$n" -eq 2 ]; then
		local cmds
		cmds=$(_hopper_help "$hopper" --help |
			sed -n 's/^ *hopper \([a-z][a-z-]*\).*/\1/p' | sort -u)
		[ -n "$cmds" ] || cmds="run validate graph check-worker pg enqueue help"
		mapfile -t COMPREPLY < <(compgen -W "$cmds version" -- "$cur")
		return
	fi
	cmd=${words[1]}

	# After "--": the worker's command, then its own arguments.
	for ((i = 2; i < n - 1; i++)); do
		if [ "${words[i]}" = "--" ]; then
			if [ "$i" -eq $((n - 2)) ]; then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur")
			else
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			fi
			return
		fi
	done

	# A command's subcommands, as its usage line spells them:
	# "hopper dead list|retry|discard ...", "hopper help [run|sources|sinks]".
	if [ "$n" -eq 3 ] && [[ $cur != -* ]]; then
		local subs
		subs=$(_hopper_help "$hopper" --help | awk -v c="$cmd" '
			$1 == "hopper" && $2 == c && $3 ~ /^\[?[a-z][a-z|-]*\]?$/ {
				gsub(/[][]/, "", $3); gsub(/\|/, " ", $3); print $3 }')
		if [ -n "$subs" ]; then
			mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
			return
		fi
	fi
	local helpargs=("$cmd" --help)
	case $cmd in
	help) return ;;
	pg) helpargs=(pg init --help) ;;
	run | validate) helpargs=(help run) ;;
	graph) helpargs=(graph --help) ;;
	esac

	local driver="" kind=""
	case $prev in
	-s | --source) kind=sources ;;
	-o | --sink) kind=sinks ;;
	-S | --source-opt) kind=source-settings ;;
	-O | --sink-opt) kind=sink-settings ;;
	-f | --pipeline | --trace | --to)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	-m | --mode)
		mapfile -t COMPREPLY < <(compgen -W "stream exec" -- "$cur")
		return
		;;
	--log-format)
		mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
		return
		;;
	--format)
		mapfile -t COMPREPLY < <(compgen -W "text dot mermaid" -- "$cur")
		return
		;;
	--log-level)
		mapfile -t COMPREPLY < <(compgen -W "debug info warn error" -- "$cur")
		return
		;;
	esac

	if [ "$kind" = sources ] || [ "$kind" = sinks ]; then
		local drivers
		drivers="$(_hopper_drivers "$hopper" "$kind" | tr '\n' ' ')jsonl:-"
		if [[ $cur == *:* && " $drivers " == *" ${cur%%:*}: "* ]]; then
			# NAME:PATH: a file for jsonl, a folder for dir.
			local name=${cur%%:*} path=${cur#*:} opt=-f
			[ "$name" = dir ] && opt=-d
			mapfile -t COMPREPLY < <(compgen "$opt" -- "$path" |
				sed "s|^|$name:|")
		else
			mapfile -t COMPREPLY < <(compgen -W "$drivers" -- "$cur")
		fi
		compopt -o nospace 2>/dev/null
	elif [ "$kind" = source-settings ] || [ "$kind" = sink-settings ]; then
		# The settings of the driver named by -s (or -o), else all.
		local flag=-s long=--source list=sources
		[ "$kind" = sink-settings ] && flag=-o long=--sink list=sinks
		for ((i = 2; i < n - 1; i++)); do
			if [ "${words[i]}" = "$flag" ] || [ "${words[i]}" = "$long" ]; then
				driver=${words[i + 1]%%:*}
			fi
		done
		mapfile -t COMPREPLY < <(compgen -W \
			"$(_hopper_settings "$hopper" "$list" "$driver")" -- "$cur")
		compopt -o nospace 2>/dev/null
	elif [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_hopper_usage "$hopper" \
			"${helpargs[@]}" | grep -oE -- '--[a-z][a-z-]*' | sort -u)" \
			-- "$cur")
	elif [[ $prev == -* ]] && _hopper_usage "$hopper" "${helpargs[@]}" |
		awk -v f="$prev" '{ for (i = 1; i < NF; i++) { w = $i; sub(/,$/, "", w)
			if ((w == f && $0 ~ /^[ \t]*-/) || w == "[" f) {
				# The flag as a help line or a usage defines it: a
				# value follows when an upper-case word does.
				found = 1
				takes = $(i + 1) ~ /^[A-Z]/ || $(i + 2) ~ /^[A-Z]/
				exit } }
			} END { exit !(found && takes) }'; then
		# The value of a flag that takes one: nothing to offer.
		return
	else
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi

	# bash splits words at ':' too: hand back only what follows the last
	# colon of the word, or it would be typed twice.
	if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
		local colon_prefix=${cur%"${cur##*:}"}
		COMPREPLY=("${COMPREPLY[@]#"$colon_prefix"}")
	fi
}
complete -F _hopper hopper
