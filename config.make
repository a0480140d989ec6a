# nginx addon Makefile fragment for ngx_vts (sourced by nginx's ./configure after config).
#
# Adds the rule that builds the Rust library with cargo, and makes the module (or, with
# --add-module, the nginx binary) depend on it. The library is built
#   - as a static archive (`--crate-type staticlib`), which nginx links with its own
#     objs/ngx_http_vts_module_modules.o;
#   - without the default features: not `vendored` (the nginx is this tree, given to the
#     bindings generator by NGINX_BUILD_DIR and NGINX_SOURCE_DIR), and not `export-modules`
#     (nginx generates the ngx_modules table itself).
#
# cargo runs when the archive is older than a Rust source file (from cargo's own dependency
# file, turned into objs/ngx_vts/deps.mk), Cargo.toml, Cargo.lock or this configuration. So a
# `make install` after `make` does not run cargo again (it may run as another user, without
# cargo on its PATH). After a change cargo does not see in those files (a new toolchain,
# RUSTFLAGS), `make clean` or remove objs/ngx_vts.

if [ "$ngx_vts_link" = DYNAMIC ]; then
    ngx_vts_dependent=$NGX_OBJS${ngx_dirsep}ngx_http_vts_module$ngx_modext
else
    ngx_vts_dependent=$NGX_OBJS${ngx_dirsep}nginx$ngx_binext
fi

ngx_vts_deps_mk=$ngx_vts_target_dir/deps.mk

cat << END                                                    >> $NGX_MAKEFILE

# ngx_http_vts_module: the Rust library, built by cargo against this configuration

$ngx_vts_dependent:	$ngx_vts_lib

$ngx_vts_lib:	$NGX_OBJS${ngx_dirsep}ngx_auto_config.h \\
		$ngx_vts_dir/Cargo.toml $ngx_vts_dir/Cargo.lock
	NGINX_BUILD_DIR="$ngx_vts_objs" NGINX_SOURCE_DIR="$ngx_vts_nginx_src" \\
	$NGX_CARGO rustc --lib --crate-type staticlib \\
		--manifest-path "$ngx_vts_dir/Cargo.toml" \\
		--target-dir "$ngx_vts_target_dir" \\
		--profile $ngx_vts_profile \\
		--no-default-features
	touch "$ngx_vts_lib"
	{ sed -e 's|^[^:]*:|$ngx_vts_lib:|' "${ngx_vts_lib%.a}.d"; echo; \\
	  sed -e 's|^[^:]*:||' "${ngx_vts_lib%.a}.d" | tr ' ' '\\n' \\
	  | sed -e '/^\$\$/d' -e 's|\$\$|:|'; } > "$ngx_vts_deps_mk"

-include $ngx_vts_deps_mk

END
