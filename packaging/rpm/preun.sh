# edgefort %preun ($1: 0 erase, 1 upgrade): stop and disable on erase only.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null; then
	systemctl --no-reload disable --now edgefort.service >/dev/null 2>&1 || :
fi
exit 0
