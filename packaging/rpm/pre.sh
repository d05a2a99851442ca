# edgefort %pre: the system user, before the files it owns are laid down.
getent group edgefort >/dev/null || groupadd --system edgefort
getent passwd edgefort >/dev/null ||
	useradd --system --gid edgefort --home-dir /var/lib/edgefort --no-create-home \
		--shell /sbin/nologin --comment "edgefort agent" edgefort
exit 0
