# lunasip %postun: restart on upgrade; on erase remove the user and group.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart lunasip.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    getent passwd lunasip >/dev/null && userdel lunasip >/dev/null 2>&1
    getent group lunasip >/dev/null && groupdel lunasip >/dev/null 2>&1
    # The package's directories, when empty (cargo-generate-rpm cannot list
    # directories as owned, so rpm leaves them; an .rpmsave keeps /etc/lunasip).
    for d in /usr/share/lunasip/lua /usr/share/lunasip/sql /usr/share/lunasip \
        /usr/share/doc/lunasip/examples /usr/share/doc/lunasip /etc/lunasip; do
        rmdir "$d" 2>/dev/null
    done
fi
exit 0
