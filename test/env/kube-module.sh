# Sourced (not run) by the scripts that build Kubernetes binaries from k8s.io/kubernetes
# (build-control-plane.sh, test/node/build-node.sh): the wrapper module and the version ldflags.
#
# k8s.io/kubernetes points its staging modules (k8s.io/api, client-go, ...) at ./staging; a
# consumer must replace each of them with the published v0.X.Y.

# kube_module DIR MODULE VERSION PKG...: writes DIR/go.mod requiring k8s.io/kubernetes@VERSION
# with every staging module replaced, and DIR/tools.go importing each PKG (a main package).
kube_module() {
  local dir="$1" module="$2" version="$3"
  shift 3
  local staging_version="v0.${version#v1.}"
  local kube_gomod go_directive
  kube_gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  go_directive=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$kube_gomod" | head -1)
  {
    echo "module $module"
    echo
    echo "go $go_directive"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$kube_gomod" \
      | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package ${module##*/}"
    echo
    echo "import ("
    local pkg
    for pkg in "$@"; do echo "	_ \"$pkg\""; done
    echo ")"
  } > "$dir/tools.go"
}

# kube_ldflags VERSION: -s -w plus the version variables, so the binaries report their release.
kube_ldflags() {
  local version="$1" minor pkg flags="-s -w"
  minor=$(echo "$version" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}
