# edgefort %postun ($1: 0 erase, 1 upgrade): restart after an upgrade.
# Erase keeps /var/lib/edgefort (rpm has no purge: delete it by hand) and a
# changed /etc/edgefort/edgefort.yaml (saved as edgefort.yaml.rpmsave).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart edgefort.service >/dev/null 2>&1 || :
	fi
fi
exit 0
