# Helpers shared by the stack scripts (sourced, not run).

# Downloads and unpacked distributions are kept per machine, outside the work tree, so a
# fresh clone on the same machine starts quickly.
CACHE_DIR=${FLASH_SALE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flash-sale}

say() { printf '[%s] %s\n' "${SAY_AS:-stack}" "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=""
apt_install() {
  say "installing $* (apt)"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get update -qq >&2
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# A JDK (17 or newer) and Maven, from Debian's packages when missing.
need_java() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# A zip distribution from Maven Central, unpacked: fetches ARTIFACT (group:name:version:zip)
# into the download cache and moves its top folder TOP to DEST (replaced whole).
unpack_maven_zip() { # artifact zip-file top dest
  local download=$CACHE_DIR/downloads
  need_java
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  mkdir -p "$download"
  mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$1" -DoutputDirectory="$download" >&2 \
    || die "mvn could not fetch $1"
  rm -rf "$4" "$4.tmp"
  mkdir -p "$4.tmp"
  unzip -q "$download/$2" -d "$4.tmp"
  mv "$4.tmp/$3" "$4"
  rmdir "$4.tmp"
}

# Short content hash of files: cache directories are keyed by what they were made from.
content_key() { cat "$@" | sha256sum | cut -c1-12; }

# What the Rust build needs beyond the toolchain: librdkafka (the Kafka consumer group
# client) is compiled from source with CMake and a C/C++ compiler.
need_build_tools() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v cc >/dev/null 2>&1 || missing+=(gcc)
  command -v c++ >/dev/null 2>&1 || missing+=(g++)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  # librdkafka's TLS and SASL/SCRAM link the system OpenSSL (found through pkg-config).
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  # librdkafka's CMake build writes `#define WITH_OAUTHBEARER_OIDC 0`, which its
  # `#ifdef` reads as on: rdkafka_conf.c then includes curl/curl.h (nothing links it).
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}
