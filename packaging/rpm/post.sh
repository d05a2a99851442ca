# edgefort %post ($1: 1 install, 2 upgrade): the state directory, made
# for commands run before the first start and never changed once it
# exists; the service follows the distribution's presets (disabled unless
# a preset enables it, as Fedora's %systemd_post does).
if [ ! -e /var/lib/edgefort ]; then
	install -d -m 0700 -o edgefort -g edgefort /var/lib/edgefort
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null; then
	systemctl --no-reload preset edgefort.service >/dev/null 2>&1 || :
fi
exit 0
