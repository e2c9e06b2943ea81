# lunasip %post: let systemd see the unit (a fresh install starts nothing:
# `systemctl enable --now lunasip`).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload preset lunasip.service >/dev/null 2>&1 || :
    fi
fi
exit 0
