#!/usr/bin/env bash
# Builds a sample xCAT management node under a scratch root: catalog rows loaded with
# `imgport tabrestore`, and one statelite image whose rootimg/ carries what real roots
# carry (owners, setuid, file capabilities, xattrs, an ACL, device nodes, a FIFO, hard
# links, a sparse file, a symlink).
#
# usage: scripts/sample-mn.sh ROOT [IMGPORT]   (IMGPORT defaults to target/release/imgport)
# Needs root for chown/mknod/setcap; setcap/setfattr/setfacl are used when present.
set -euo pipefail
root=${1:?usage: sample-mn.sh ROOT [IMGPORT]}
imgport=${2:-target/release/imgport}
img=rhels8.5.0-x86_64-statelite-compute
dir=$root/install/netboot/rhels8.5.0/x86_64/compute
share=$root/opt/xcat/share/xcat/netboot/rh

mkdir -p "$root/etc/xcat" "$dir" "$share" "$root/install/postscripts"
csv=$(mktemp -d)
trap 'rm -rf "$csv"' EXIT

cat > "$csv/site.csv" <<'CSV'
#key,value,comments,disable
"installdir","/install",,
"master","10.0.0.1",,
CSV
cat > "$csv/osimage.csv" <<CSV
#imagename,profile,imagetype,provmethod,osname,osvers,osdistroname,osarch,synclists
"$img","compute","linux","statelite","Linux","rhels8.5.0","rhels8.5.0-x86_64","x86_64",
CSV
cat > "$csv/linuximage.csv" <<CSV
#imagename,pkglist,exlist,postinstall,rootimgdir,pkgdir
"$img","/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist","/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.exlist","/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.postinstall","/install/netboot/rhels8.5.0/x86_64/compute","/install/rhels8.5.0/x86_64"
CSV
cat > "$csv/litefile.csv" <<CSV
#image,file,options,comments,disable
"ALL","/etc/adjtime","tmpfs",,
"ALL","/var/log/",,,
"$img","/etc/ntp.conf","rw",,
"$img","/root/.ssh/","persistent",,
CSV
cat > "$csv/nodelist.csv" <<'CSV'
#node,groups,status,comments,disable
"cn01","compute,all",,,
"cn02","compute,all",,,
CSV
cat > "$csv/postscripts.csv" <<'CSV'
#node,postscripts,postbootscripts,comments,disable
"xcatdefaults","syslog,remoteshell,syncfiles","otherpkgs",,
"compute","confignetwork","mypostboot",,
CSV
for t in site osimage linuximage litefile nodelist postscripts; do
  "$imgport" --root "$root" tabrestore "$csv/$t.csv"
done

# Profile files shipped by xCAT and the boot files genimage/liteimg would make.
printf 'bash\nopenssh-server\nchrony\n' > "$share/compute.rhels8.x86_64.pkglist"
printf './usr/share/man*\n./usr/share/doc*\n' > "$share/compute.rhels8.x86_64.exlist"
printf '#!/bin/sh\necho postinstall\n' > "$share/compute.rhels8.x86_64.postinstall"
chmod 0755 "$share/compute.rhels8.x86_64.postinstall"
head -c 1048576 /dev/urandom > "$dir/kernel"
head -c 524288 /dev/urandom | gzip -1 > "$dir/initrd-statelite.gz"
printf '#!/bin/sh\necho hello from a postscript\n' > "$root/install/postscripts/hello"

# The root tree.
r=$dir/rootimg
mkdir -p "$r"/{bin,etc,dev,home/alice,tmp,var/log,usr/lib,data}
chmod 1777 "$r/tmp"
printf 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n' > "$r/etc/passwd"
printf 'root:x:0:\nalice:x:1000:\n' > "$r/etc/group"
printf 'server 10.0.0.1 iburst\n' > "$r/etc/ntp.conf"
head -c 200000 /dev/urandom > "$r/bin/ping"
chmod 0755 "$r/bin/ping"
cp "$r/bin/ping" "$r/bin/su" && chmod 4755 "$r/bin/su"
ln "$r/bin/ping" "$r/usr/lib/ping.hardlink"
ln -s ../bin/ping "$r/usr/lib/ping.symlink"
ln -s /nonexistent/target "$r/usr/lib/dangling"
printf 'alice was here\n' > "$r/home/alice/notes.txt"
chown -R 1000:1000 "$r/home/alice"
chmod 0700 "$r/home/alice"
ln "$r/bin/ping" "$r/home/alice/ping.3rd-link"   # after the chown: a link shares the inode
mknod "$r/dev/null" c 1 3 && chmod 0666 "$r/dev/null"
mknod "$r/dev/sda" b 8 0
mkfifo "$r/dev/initctl"
truncate -s 64M "$r/data/sparse.img"
printf 'start' | dd of="$r/data/sparse.img" bs=1 seek=1048576 conv=notrunc status=none
printf 'middle' | dd of="$r/data/sparse.img" bs=1 seek=41943040 conv=notrunc status=none
touch -d '2020-02-02 02:02:02.123456789' "$r/etc/ntp.conf"
command -v setcap >/dev/null && setcap cap_net_raw+ep "$r/bin/ping"
command -v setfattr >/dev/null && setfattr -n user.origin -v imgport-sample "$r/etc/passwd"
command -v setfacl >/dev/null && setfacl -m u:1000:rwx "$r/data"
echo "sample MN ready under $root: image $img"
