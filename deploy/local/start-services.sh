#!/usr/bin/env bash
# Start the local servers the tests need when they are down: PostgreSQL (trust on loopback), Redis and
# MariaDB (a live source for the drift observer).
# Kafka (tansu), ClickHouse (chDB) and Milvus Lite need no server: they come with the Python packages.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

postgres_answers() {
  command -v psql >/dev/null && psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1" >/dev/null 2>&1
}

if ! postgres_answers; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "aietl: trust loopback" "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust # aietl: trust loopback\nhost all all ::1/128 trust # aietl: trust loopback' "$hba"
  fi
  if port_open 5432; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  else
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 1 60); do postgres_answers && break; sleep 0.5; done
  postgres_answers || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
fi
echo "PostgreSQL: ok"

if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 40); do port_open 6379 && break; sleep 0.25; done
  port_open 6379 || { echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
fi
echo "Redis: ok"

# Chromium (Debian's) for the console's browser tests (tests/console, Playwright with
# executable_path=/usr/bin/chromium: Playwright's own browser download is never used).
if [ ! -x /usr/bin/chromium ]; then
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
fi
echo "Chromium: ok"

# MariaDB (Debian's mariadb-server): a live source for the drift observer's tests. A loopback-only
# server with a local user `aietl` (password `aietl`) that may create databases.
mariadb_answers() {
  command -v mariadb >/dev/null &&
    mariadb -h 127.0.0.1 -P 3306 -u aietl -paietl -e "SELECT 1" >/dev/null 2>&1
}

if ! mariadb_answers; then
  command -v mariadbd >/dev/null || apt_install mariadb-server mariadb-client
  if ! port_open 3306; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    [ -d /var/lib/mysql/mysql ] || as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    (as_root mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
      --socket=/run/mysqld/mysqld.sock >/var/log/mariadb-aietl.log 2>&1 &)
    for _ in $(seq 1 60); do port_open 3306 && break; sleep 0.5; done
  fi
  as_root mariadb --socket=/run/mysqld/mysqld.sock -u root -e \
    "CREATE USER IF NOT EXISTS 'aietl'@'127.0.0.1' IDENTIFIED BY 'aietl';
     CREATE USER IF NOT EXISTS 'aietl'@'localhost' IDENTIFIED BY 'aietl';
     GRANT ALL PRIVILEGES ON *.* TO 'aietl'@'127.0.0.1'; GRANT ALL PRIVILEGES ON *.* TO 'aietl'@'localhost';"
  for _ in $(seq 1 20); do mariadb_answers && break; sleep 0.5; done
  mariadb_answers || { echo "MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1; }
fi
echo "MariaDB: ok"
