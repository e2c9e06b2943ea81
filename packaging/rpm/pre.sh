# lunasip %pre: the system user and group the unit runs as.
getent group lunasip >/dev/null || groupadd -r lunasip
getent passwd lunasip >/dev/null || \
    useradd -r -g lunasip -M -d /nonexistent -s /sbin/nologin \
        -c "lunasip SIP proxy" lunasip
exit 0
