# The operator's material a cnos-joind needs, for the tests that start the real daemon. Source after
# tests/lib.sh; works in the current directory.
#
#   joind_material NAME     master.secret (mode 0600; $JOIND_MASTER and $JOIND_SALT hold its hex),
#                           measurements.json enforcing PCRs 0-7 = zero (a fresh swtpm) with its
#                           signature measurements.json.sig by manifest.key / manifest.pub, and a P-256
#                           cluster CA ca.pem / ca.key ("cnos NAME cluster CA")
#   joind_conf WORKERS MAXCONN TIMEOUT READ_TIMEOUT
#                           prints a joind.conf for that material (listen on 127.0.0.1:0, EK CA
#                           bundle ek-ca.pem, API endpoint 10.0.0.1:6443)

joind_material() { # NAME
        local name=$1 zero pcrs="" i
        JOIND_MASTER=$(openssl rand -hex 32)
        JOIND_SALT=$(openssl rand -hex 32)
        (umask 077 && printf 'master-secret = %s\nsalt = %s\n' "$JOIND_MASTER" "$JOIND_SALT" >master.secret)
        zero=$(printf '0%.0s' $(seq 64))
        for i in 0 1 2 3 4 5 6 7; do pcrs="$pcrs\"$i\":{\"expected\":\"$zero\",\"warn_only\":false},"; done
        printf '{"image":{"name":"cnos-%s","sha256":"%s","size":1,"version":"1"},"model":{"alg":"sha256","boot":"swtpm","stub_version":"none"},"pcrs":{%s},"schema":"cnos-measurements/1"}\n' \
                "$name" "$zero" "${pcrs%,}" >measurements.json
        openssl ecparam -name prime256v1 -genkey -noout -out manifest.key 2>/dev/null
        openssl ec -in manifest.key -pubout -out manifest.pub 2>/dev/null
        openssl dgst -sha256 -sign manifest.key measurements.json | base64 -w0 >measurements.json.sig
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 \
                -subj "/CN=cnos $name cluster CA" -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        chmod 600 ca.key
}

joind_conf() { # WORKERS MAXCONN TIMEOUT READ_TIMEOUT
        cat <<EOC
listen = 127.0.0.1:0
manifest = $PWD/measurements.json
manifest-signature = $PWD/measurements.json.sig
manifest-key = $PWD/manifest.pub
ek-ca = $PWD/ek-ca.pem
ca-cert = $PWD/ca.pem
ca-key = $PWD/ca.key
secret-file = $PWD/master.secret
api-endpoint = 10.0.0.1:6443
workers = $1
max-connections = $2
timeout = $3
read-timeout = $4
EOC
}
