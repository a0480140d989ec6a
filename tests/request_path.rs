//! The request path takes no lock and does no atomic read-modify-write in the common case
//! (README, "How it works": the owner of a shard writes it with plain loads and stores),
//! checked on the machine code of the module this test run built, so that a change of source
//! or of compiler that adds one fails here.
//!
//! With binutils (`nm`, `objdump`, `addr2line`), the test disassembles the functions nginx
//! calls per request, `log_phase::handler` and `upstream::record`, and every function of the
//! module they call that is not on the cold list below (the request path is all of that code,
//! whatever the compiler inlined or not). Each instruction is mapped to its inline chain
//! (`addr2line -i`; the release profile has `debug = 1`), which tells which source function
//! an inlined instruction comes from. Then:
//!
//! 1. every atomic read-modify-write (x86-64: a `lock` prefix, `xchg` with memory,
//!    `cmpxchg`) must come from `Zone::raise_flag`, the one-shot "zone is full" flag;
//! 2. no call may reach a lock or an allocator, and every call must be classified: to a cold
//!    function (its reason in `COLD`), to a plain library function (`PLAIN`), or to a function
//!    of the module, which is then inspected too. An unresolved or unlisted call is a finding;
//! 3. sanity, so that the test cannot pass by looking at the wrong code: each entry point has
//!    plain (unlocked) `add`/`inc` to memory inlined from `shard::add_owned`, the counting
//!    itself, and the RMW detector found the raise_flag RMW.
//!
//! Only x86-64 machine code is read; only the optimized build is meaningful (an unoptimized one
//! calls every atomic helper out of line).
mod common;

#[cfg(not(target_arch = "x86_64"))]
#[test]
fn request_path_takes_no_lock_and_no_atomic_rmw() {
    eprintln!(
        "request_path: nothing checked: the test reads x86-64 machine code and this is {}",
        std::env::consts::ARCH
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn request_path_takes_no_lock_and_no_atomic_rmw() {
    if cfg!(debug_assertions) {
        eprintln!(
            "request_path: nothing checked: the invariant is about the optimized code nginx runs; \
             run `cargo test --release --test request_path`"
        );
        return;
    }
    x86_64::check();
}

#[cfg(target_arch = "x86_64")]
mod x86_64 {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::fmt::Write as _;
    use std::path::Path;
    use std::process::Command;

    use super::common;

    // -----------------------------------------------------------------------------------------
    // The policy
    // -----------------------------------------------------------------------------------------

    /// The functions nginx calls for every request (LOG_PHASE; upstream attempts).
    const ENTRY_POINTS: &[&str] = &[
        "ngx_vts::nginx::log_phase::handler",
        "ngx_vts::nginx::upstream::record",
    ];

    /// The only source of an atomic read-modify-write allowed on the request path: the
    /// one-shot warning flag of a full zone, which loads first and does its `fetch_or` once
    /// per zone.
    const RMW_ALLOWED_IN: &str = "ngx_vts::stats::zone::Zone::raise_flag";

    /// The owner's add, which must be plain memory adds (the sanity check).
    const OWNED_ADD: &str = "ngx_vts::stats::shard::add_owned";

    /// A call whose target's name contains one of these is a finding (unless it is on a cold
    /// path): locks, and allocators (an allocation on the request path is a finding too).
    const FORBIDDEN: &[&str] = &[
        "ngx_shmtx_lock",
        "ngx_shmtx_trylock",
        "pthread_mutex",
        "pthread_rwlock",
        "ngx_rwlock",
        "futex",
        "ngx_spinlock",
        "std::sync::Mutex",
        "mutex::Mutex",
        "RwLock",
        "ngx_slab_alloc",
        "ngx_palloc",
        "ngx_pnalloc",
        "malloc",
        "calloc",
        "realloc",
        "memalign",
        "aligned_alloc",
        "__rust_alloc",
    ];

    /// Off the common path. A call to one of these is allowed and not inspected further; an
    /// instruction inlined from one of them (its inline chain has it) is not checked for calls
    /// (still for RMWs). A pattern matches a name that starts with it, at a name boundary (see
    /// `matches`).
    ///
    /// `peer_cache::PeerCache::slot` is deliberately not here: its cache hit runs for every
    /// upstream attempt, so it is inspected; its miss path is cold through `Zone::key` and
    /// `upstream_key` below.
    const COLD: &[(&str, &str)] = &[
        (
            "ngx_vts::stats::zone::Zone::chunk_or_grow",
            "a key's first write in this shard: allocates its chunk under the slab lock, once per 16 keys",
        ),
        (
            "ngx_vts::nginx::log_phase::register",
            "a server block whose key is not cached yet (all are registered at worker start)",
        ),
        (
            "ngx_vts::stats::zone::Zone::key",
            "peer cache miss: looks the key up in the directory, registers it under the slab lock",
        ),
        (
            "ngx_vts::stats::directory::upstream_key",
            "peer cache miss: builds the new peer's directory name (allocates)",
        ),
        (
            "ngx_vts::nginx::peer_cache::PeerCache::group_of_peer",
            "the attempts of an earlier upstream (error_page, X-Accel-Redirect to another one): which group their peer is in",
        ),
        (
            "ngx_vts::stats::shard::add_shared",
            "shared shard (more workers than shards) and overflow entry (full zone): atomic adds by design",
        ),
        (
            "ngx_log_error_core",
            "the zone-full warning, logged once per zone (raise_flag said so)",
        ),
        ("ngx::log::", "formatting that warning"),
        (
            "<alloc::string::String>::from_utf8_lossy",
            "the name in that warning",
        ),
        (
            "core::panicking::",
            "panics (bounds checks): never taken, caught by the handler",
        ),
        (
            "core::cell::panic_already_borrowed",
            "RefCell borrow panic: never taken (one thread)",
        ),
        ("core::cell::panic_already_mutably_borrowed", "the same"),
        ("core::option::unwrap_failed", "panic"),
        ("core::option::expect_failed", "panic"),
        ("core::result::unwrap_failed", "panic"),
        (
            "std::panicking::catch_unwind::do_catch",
            "catch_unwind's landing pad: only after a panic",
        ),
        ("std::panicking::catch_unwind::cleanup", "the same"),
        (
            "core::ptr::drop_in_place<alloc::boxed::Box<dyn core::any::Any",
            "drops a caught panic's payload: only after a panic",
        ),
        (
            "_Unwind_Resume",
            "continues unwinding after a landing pad: only after a panic",
        ),
    ];

    /// Library functions allowed on the common path: they neither lock nor allocate.
    const PLAIN: &[(&str, &str)] = &[
        ("bcmp", "compares a peer's name with the cached one"),
        ("memcmp", "the same"),
        ("memcpy", "copies bytes"),
        ("memmove", "copies bytes"),
        ("memset", "fills bytes"),
        (
            "__rustc::__rust_dealloc",
            "frees what an allocation made, and that allocation is itself checked",
        ),
        ("free", "the same"),
    ];

    // -----------------------------------------------------------------------------------------
    // The check
    // -----------------------------------------------------------------------------------------

    /// What one inspected function contains.
    struct Inspected {
        name: String,
        reached_from: String,
        instructions: usize,
        /// Distinct targets of the calls on the common path, and of the cold ones.
        calls_hot: BTreeSet<String>,
        calls_cold: BTreeSet<String>,
        owned_adds: usize,
        rmws: Vec<String>,
    }

    pub fn check() {
        for tool in ["nm", "objdump", "addr2line"] {
            require_tool(tool);
        }
        let so = common::module_path();
        let syms = Symbols::load(&so);
        let got = got_slots(&so, &syms);

        // Work list of functions to inspect: (start, end, name, reached from).
        let mut queue: Vec<(u64, u64, String, String)> = Vec::new();
        for entry in ENTRY_POINTS {
            let found = syms.named(entry);
            assert!(
                !found.is_empty(),
                "request path entry point `{entry}` is not a symbol of {} (renamed, or inlined into \
                 its caller?): update ENTRY_POINTS in tests/request_path.rs",
                so.display()
            );
            for (start, end) in found {
                queue.push((start, end, entry.to_string(), "nginx".to_string()));
            }
        }
        queue.reverse();

        let mut seen = BTreeSet::new();
        let mut findings: Vec<String> = Vec::new();
        let mut inspected: Vec<Inspected> = Vec::new();
        while let Some((start, end, name, from)) = queue.pop() {
            if !seen.insert(start) {
                continue;
            }
            let insns = disassemble(&so, start, end);
            assert!(
                !insns.is_empty(),
                "objdump printed no instruction for {name} at {start:#x}"
            );
            // Only the instructions that matter are looked up (one addr2line run per function).
            let wanted: Vec<u64> = insns
                .iter()
                .filter(|i| i.is_rmw() || i.is_add_to_memory() || i.branch_target_text().is_some())
                .map(|i| i.addr)
                .chain([start])
                .collect();
            let chains = inline_chains(&so, &wanted);
            if chains
                .get(&start)
                .map_or(true, |c| c.iter().all(|f| f.func == "??"))
            {
                panic!(
                    "addr2line has no function for {name} at {start:#x}: the module has no debug info \
                     (the release profile needs `debug = 1` in Cargo.toml)"
                );
            }
            let mut f = Inspected {
                name: name.clone(),
                reached_from: from,
                instructions: insns.len(),
                calls_hot: BTreeSet::new(),
                calls_cold: BTreeSet::new(),
                owned_adds: 0,
                rmws: Vec::new(),
            };
            for insn in &insns {
                let chain = chains.get(&insn.addr).map(Vec::as_slice).unwrap_or(&[]);
                let in_chain = |pattern: &str| chain.iter().any(|fr| matches(&fr.func, pattern));

                // 1. Atomic read-modify-writes.
                if insn.is_rmw() {
                    let line = format!("{:#x}  {}\n{}", insn.addr, insn.text, show_chain(chain));
                    if in_chain(RMW_ALLOWED_IN) {
                        f.rmws.push(line);
                    } else {
                        findings.push(format!("atomic read-modify-write in {name}:\n{line}"));
                    }
                }

                // 3. The owner's counting: plain adds to memory.
                if insn.is_add_to_memory() && !insn.lock && in_chain(OWNED_ADD) {
                    f.owned_adds += 1;
                }

                // 2. Calls (and tail calls: jumps out of the function).
                let Some(target) = insn.branch_target(start, end, &syms, &got) else {
                    continue;
                };
                // Code inlined from a cold function (the miss path of a cache, the warning) may
                // lock or allocate.
                if let Some((cold, _)) = COLD.iter().find(|(p, _)| in_chain(p)) {
                    f.calls_cold
                        .insert(format!("{} (inlined from {cold})", target.describe()));
                    continue;
                }
                let site = || format!("{:#x}  {}\n{}", insn.addr, insn.text, show_chain(chain));
                match target {
                    Target::Unresolved(why) => findings.push(format!(
                        "unresolved call in {name} ({why}): cannot tell whether it locks or allocates:\n{}",
                        site()
                    )),
                    Target::Named {
                        name: callee,
                        module_fn,
                    } => {
                        if let Some(bad) = FORBIDDEN.iter().find(|p| callee.contains(*p)) {
                            findings.push(format!(
                                "call to `{callee}` (a lock or an allocation: matches `{bad}`) in {name}:\n{}",
                                site()
                            ));
                        } else if COLD.iter().any(|(p, _)| matches(&callee, p)) {
                            f.calls_cold.insert(callee);
                        } else if PLAIN.iter().any(|(p, _)| callee == *p) {
                            f.calls_hot.insert(callee);
                        } else if let Some((s, e)) = module_fn {
                            // The module's own code: part of the request path, inspect it too.
                            f.calls_hot.insert(callee.clone());
                            queue.push((s, e, callee, name.clone()));
                        } else {
                            findings.push(format!(
                                "call to `{callee}` in {name}, which is neither the module's code nor \
                                 listed in COLD or PLAIN (tests/request_path.rs): classify it:\n{}",
                                site()
                            ));
                        }
                    }
                }
            }
            inspected.push(f);
        }

        // 3. Sanity: the inspected code is the counting code, and the detectors work.
        for entry in ENTRY_POINTS {
            let adds: usize = inspected
                .iter()
                .filter(|f| f.name == *entry)
                .map(|f| f.owned_adds)
                .sum();
            if adds == 0 {
                findings.push(format!(
                    "sanity: {entry} has no plain `add`/`inc` to memory inlined from `{OWNED_ADD}`: either the \
                     owner's add is no longer plain adds, or it is no longer inlined there, or the \
                     instruction/inline-chain mapping of this test is broken"
                ));
            }
        }
        if inspected.iter().all(|f| f.rmws.is_empty()) {
            findings.push(format!(
                "sanity: no atomic read-modify-write from `{RMW_ALLOWED_IN}` was found on the request path: \
                 the RMW detector of this test (lock prefix in objdump's output) may be broken"
            ));
        }

        print_summary(&so, &inspected);
        assert!(
            findings.is_empty(),
            "the request path must take no lock and do no atomic read-modify-write in the common case \
             (README: How it works). {} finding(s) in {}:\n\n{}",
            findings.len(),
            so.display(),
            findings.join("\n\n")
        );
    }

    fn print_summary(so: &Path, inspected: &[Inspected]) {
        let mut s = format!(
            "request_path: inspected {} ({} functions)\n",
            so.display(),
            inspected.len()
        );
        for f in inspected {
            writeln!(
                s,
                "  {} (called by {}): {} instructions, {} plain adds from add_owned, {} allowed RMW(s)\n    \
                 calls on the common path: {}\n    cold calls: {}",
                f.name,
                f.reached_from,
                f.instructions,
                f.owned_adds,
                f.rmws.len(),
                list(&f.calls_hot),
                list(&f.calls_cold),
            )
            .unwrap();
            for r in &f.rmws {
                writeln!(s, "    RMW {}", r.replace('\n', "\n        ")).unwrap();
            }
        }
        eprint!("{s}");
    }

    fn list(names: &BTreeSet<String>) -> String {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        }
    }

    /// Does `name` start with `pattern` at a name boundary? (`Zone::key` matches
    /// `Zone::key::{{closure}}` but not `Zone::keys`; `ngx::log::` matches `ngx::log::write_fmt`.)
    fn matches(name: &str, pattern: &str) -> bool {
        let Some(rest) = name.strip_prefix(pattern) else {
            return false;
        };
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        !pattern.ends_with(ident) || !rest.starts_with(ident)
    }

    // -----------------------------------------------------------------------------------------
    // binutils
    // -----------------------------------------------------------------------------------------

    fn require_tool(tool: &str) {
        if let Err(e) = Command::new(tool).arg("--version").output() {
            panic!(
                "`{tool}` cannot be run ({e}): this test disassembles the module with binutils \
                 (nm, objdump, addr2line). Install binutils (Debian: it comes with gcc, which \
                 .ci/install-deps installs)"
            );
        }
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn hex(s: &str) -> Option<u64> {
        u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
    }

    /// The module's function symbols (`nm -C -S`), demangled.
    struct Symbols {
        /// start -> (end, name); one name per address.
        by_start: BTreeMap<u64, (u64, String)>,
        /// Every (name, start, end), aliases included.
        all: Vec<(String, u64, u64)>,
    }

    impl Symbols {
        fn load(so: &Path) -> Symbols {
            let text = run(Command::new("nm").args(["-C", "-S", "--defined-only"]).arg(so));
            let mut by_start = BTreeMap::new();
            let mut all = Vec::new();
            for line in text.lines() {
                // "addr size type name" ("addr type name" for a symbol without size).
                let mut parts = line.splitn(4, ' ');
                let (Some(addr), Some(size), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let (Some(addr), Some(size), Some(name)) = (hex(addr), hex(size), parts.next()) else {
                    continue;
                };
                if matches!(kind, "t" | "T" | "W" | "i") && size > 0 {
                    by_start.entry(addr).or_insert((addr + size, name.to_string()));
                    all.push((name.to_string(), addr, addr + size));
                }
            }
            assert!(!by_start.is_empty(), "nm found no function in {}", so.display());
            Symbols { by_start, all }
        }

        /// (start, end) of every function called exactly `name`.
        fn named(&self, name: &str) -> Vec<(u64, u64)> {
            self.all
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, s, e)| (*s, *e))
                .collect()
        }

        /// The function that contains `addr`: (start, end, name).
        fn containing(&self, addr: u64) -> Option<(u64, u64, &str)> {
            let (start, (end, name)) = self.by_start.range(..=addr).next_back()?;
            (addr < *end).then_some((*start, *end, name.as_str()))
        }
    }

    /// GOT slot address -> the function whose address it holds (always `Target::Named`).
    type GotSlots = HashMap<u64, Target>;

    /// What each GOT slot holds, from the dynamic relocations (`objdump -R`): a symbol's name
    /// (GLOB_DAT, JUMP_SLOT), or the module's own function at the RELATIVE addend.
    fn got_slots(so: &Path, syms: &Symbols) -> GotSlots {
        let text = run(Command::new("objdump").args(["-R", "-C"]).arg(so));
        let mut slots = HashMap::new();
        for line in text.lines() {
            // "OFFSET TYPE VALUE", VALUE a (demangled) name or `*ABS*+0x...`.
            let mut parts = line.split_whitespace();
            let (Some(offset), Some(kind)) = (parts.next().and_then(hex), parts.next()) else {
                continue;
            };
            let value = parts.collect::<Vec<_>>().join(" ");
            let (name, module_fn) = match kind {
                "R_X86_64_RELATIVE" => {
                    let Some(target) = value.strip_prefix("*ABS*+").and_then(hex) else {
                        continue;
                    };
                    match syms.containing(target) {
                        Some((s, e, n)) if s == target => (n.to_string(), Some((s, e))),
                        _ => continue,
                    }
                }
                // The name without its version (`bcmp@GLIBC_2.2.5`) or addend.
                _ => (value.split(['@', '+']).next().unwrap_or("").to_string(), None),
            };
            slots.insert(offset, Target::Named { name, module_fn });
        }
        slots
    }

    /// One line of `objdump -d`.
    struct Insn {
        addr: u64,
        /// The instruction as printed, without objdump's `# ...` comment.
        text: String,
        /// objdump's comment: for a RIP-relative operand, the address it refers to.
        comment: Option<String>,
        lock: bool,
        mnemonic: String,
        operands: String,
    }

    /// Instruction prefixes objdump prints before the mnemonic.
    const PREFIXES: &[&str] = &[
        "lock", "rep", "repz", "repe", "repnz", "repne", "notrack", "bnd", "data16", "addr32", "cs", "ds",
        "ss", "es", "fs", "gs", "xacquire", "xrelease",
    ];

    impl Insn {
        fn parse(line: &str) -> Option<Insn> {
            // "   2a133:\tincq   (%rcx)" ; "   2a075:\tcall   *0x4c6ad(%rip)        # 76728 <...>"
            let (addr, rest) = line.split_once(":\t")?;
            let addr = hex(addr.trim())?;
            let (text, comment) = match rest.split_once('#') {
                Some((t, c)) => (t.trim(), Some(c.trim().to_string())),
                None => (rest.trim(), None),
            };
            let mut tokens = text.split_whitespace().peekable();
            let mut lock = false;
            while let Some(&t) = tokens.peek() {
                if !PREFIXES.contains(&t) {
                    break;
                }
                lock |= t == "lock";
                tokens.next();
            }
            Some(Insn {
                addr,
                text: text.to_string(),
                comment,
                lock,
                mnemonic: tokens.next().unwrap_or("").to_string(),
                operands: tokens.collect::<Vec<_>>().join(" "),
            })
        }

        fn has_memory_operand(&self) -> bool {
            self.operands.contains('(')
        }

        /// An atomic read-modify-write on x86-64.
        fn is_rmw(&self) -> bool {
            self.lock
                || self.mnemonic.starts_with("cmpxchg")
                || (self.mnemonic.starts_with("xchg") && self.has_memory_operand())
        }

        /// `add`/`inc` whose destination (AT&T: the last operand) is memory.
        fn is_add_to_memory(&self) -> bool {
            let m = self.mnemonic.as_str();
            let is_add = ["add", "inc"].iter().any(|op| {
                m.strip_prefix(op)
                    .is_some_and(|s| matches!(s, "" | "b" | "w" | "l" | "q"))
            });
            is_add && self.destination().contains('(')
        }

        /// The last operand (AT&T syntax: the destination); commas inside `(base,index,scale)`
        /// do not separate operands.
        fn destination(&self) -> &str {
            let mut depth = 0i32;
            let mut start = 0;
            for (i, c) in self.operands.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => start = i + 1,
                    _ => {}
                }
            }
            &self.operands[start..]
        }

        /// The operand of a call or jump, if this is one.
        fn branch_target_text(&self) -> Option<&str> {
            (self.mnemonic.starts_with("call") || self.mnemonic.starts_with('j'))
                .then_some(self.operands.as_str())
        }

        /// Where a call, or a jump out of the function [start, end), goes. None for anything
        /// else, including jumps inside the function and jump tables.
        fn branch_target(&self, start: u64, end: u64, syms: &Symbols, got: &GotSlots) -> Option<Target> {
            let op = self.branch_target_text()?;
            let is_call = self.mnemonic.starts_with("call");
            if let Some(indirect) = op.strip_prefix('*') {
                if indirect.contains("(%rip)") {
                    // Through a GOT slot: objdump's comment has the slot's address.
                    let slot = self
                        .comment
                        .as_deref()
                        .and_then(|c| c.split_whitespace().next())
                        .and_then(hex);
                    return Some(match slot.and_then(|s| got.get(&s)) {
                        Some(t) => t.clone(),
                        None => Target::Unresolved(format!(
                            "GOT slot {} has no dynamic relocation",
                            self.comment.as_deref().unwrap_or("?")
                        )),
                    });
                }
                // Through a register or memory: a function pointer for a call; for a jump,
                // LLVM's jump table of a `match` (a tail call through a pointer is the same
                // instruction, but none of the request path's code calls through pointers).
                return is_call.then(|| Target::Unresolved(format!("indirect call through {indirect}")));
            }
            // Direct: "23630 <ngx_vts::nginx::upstream::record>" or "72a50 <_Unwind_Resume@plt>".
            let (addr, label) = op.split_once(' ').unwrap_or((op, ""));
            let addr = hex(addr)?;
            if (start..end).contains(&addr) {
                return None;
            }
            Some(match syms.containing(addr) {
                Some((s, e, name)) => Target::Named {
                    name: name.to_string(),
                    module_fn: Some((s, e)),
                },
                None => {
                    let label = label.trim_start_matches('<').trim_end_matches('>');
                    Target::Named {
                        name: label.split(['@', '+']).next().unwrap_or(label).to_string(),
                        module_fn: None,
                    }
                }
            })
        }
    }

    #[derive(Clone)]
    enum Target {
        /// `module_fn`: (start, end) when the target is a function of the module.
        Named {
            name: String,
            module_fn: Option<(u64, u64)>,
        },
        Unresolved(String),
    }

    impl Target {
        fn describe(&self) -> String {
            match self {
                Target::Named { name, .. } => name.clone(),
                Target::Unresolved(why) => format!("unresolved: {why}"),
            }
        }
    }

    fn disassemble(so: &Path, start: u64, end: u64) -> Vec<Insn> {
        let text = run(Command::new("objdump")
            .args(["-d", "--no-show-raw-insn", "-C"])
            .arg(format!("--start-address={start:#x}"))
            .arg(format!("--stop-address={end:#x}"))
            .arg(so));
        text.lines().filter_map(Insn::parse).collect()
    }

    /// One frame of an inline chain.
    struct Frame {
        func: String,
        loc: String,
    }

    /// The inline chain of each address, innermost frame first (`addr2line -a -f -i -C`).
    fn inline_chains(so: &Path, addrs: &[u64]) -> HashMap<u64, Vec<Frame>> {
        let mut cmd = Command::new("addr2line");
        cmd.args(["-a", "-f", "-i", "-C", "-e"]).arg(so);
        cmd.args(addrs.iter().map(|a| format!("{a:#x}")));
        let text = run(&mut cmd);
        // "0x000000000002a133" then (function, file:line) pairs until the next address.
        let mut chains: HashMap<u64, Vec<Frame>> = HashMap::new();
        let mut current = None;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("0x") && line.len() == 18 {
                current = hex(line);
                continue;
            }
            let Some(addr) = current else { continue };
            let loc = lines.next().unwrap_or("").to_string();
            chains.entry(addr).or_default().push(Frame {
                func: line.to_string(),
                loc,
            });
        }
        chains
    }

    /// A location without the long prefixes: the project's root, `/rustc/<hash>/`, the registry.
    fn short_loc(loc: &str) -> &str {
        let loc = loc.trim_start_matches(concat!(env!("CARGO_MANIFEST_DIR"), "/"));
        ["/library/", "/registry/src/"]
            .iter()
            .find_map(|anchor| loc.find(anchor).map(|i| &loc[i + 1..]))
            .unwrap_or(loc)
    }

    fn show_chain(chain: &[Frame]) -> String {
        let frames: Vec<String> = chain
            .iter()
            .map(|f| format!("      in {} ({})", f.func, short_loc(&f.loc)))
            .collect();
        if frames.is_empty() {
            "      (no inline chain)".to_string()
        } else {
            frames.join("\n")
        }
    }

    /// The detectors on lines as objdump prints them, so that a change of objdump's format
    /// shows here rather than as a check that silently finds nothing.
    #[test]
    fn reads_objdump_lines() {
        let insn = |line: &str| Insn::parse(line).unwrap_or_else(|| panic!("unparsed: {line}"));

        let rmw = insn("   2a0e6:\tlock btsl $0x1,(%rax)");
        assert!(rmw.lock && rmw.is_rmw() && rmw.mnemonic == "btsl" && rmw.addr == 0x2a0e6);
        assert!(insn("   1000:\tlock add %rbp,0x8(%rcx)").is_rmw());
        assert!(insn("   1000:\tcmpxchg %rcx,(%rdx)").is_rmw());
        assert!(insn("   1000:\txchg   %rax,0x8(%rdi)").is_rmw());
        assert!(
            !insn("   1000:\txchg   %ax,%ax").is_rmw(),
            "register xchg (a nop) is not atomic"
        );

        assert!(insn("   2a133:\tincq   (%rcx)").is_add_to_memory());
        assert!(insn("   2a140:\tadd    %rbp,0x8(%rcx)").is_add_to_memory());
        assert!(insn("   2a231:\tincq   0x70(%rcx,%rdx,8)").is_add_to_memory());
        assert!(!insn("   2a0a8:\tadd    %rax,%rdi").is_add_to_memory());
        assert!(!insn("   2a0a8:\tadd    0x8(%rcx,%rdx,8),%rdi").is_add_to_memory());
        assert!(!insn("   2a0a8:\taddsd  (%rax),%xmm0").is_add_to_memory());

        let syms = Symbols {
            by_start: BTreeMap::from([(0x2000, (0x2100, "callee".to_string()))]),
            all: vec![("callee".to_string(), 0x2000, 0x2100)],
        };
        let got = GotSlots::from([(
            0x76730,
            Target::Named {
                name: "ngx_log_error_core".to_string(),
                module_fn: None,
            },
        )]);
        let target = |line: &str| {
            insn(line)
                .branch_target(0x1000, 0x1100, &syms, &got)
                .map(|t| t.describe())
        };
        assert_eq!(
            target("    1010:\tje     1080 <f+0x80>"),
            None,
            "a jump inside the function"
        );
        assert_eq!(
            target("    1010:\tcall   2000 <callee>").as_deref(),
            Some("callee")
        );
        assert_eq!(
            target("    1010:\tjmp    2000 <callee>").as_deref(),
            Some("callee"),
            "tail call"
        );
        assert_eq!(
            target("    1010:\tcall   72a50 <_Unwind_Resume@plt>").as_deref(),
            Some("_Unwind_Resume")
        );
        assert_eq!(
            target("    1010:\tcall   *0x4c60b(%rip)        # 76730 <ngx_log_error_core>").as_deref(),
            Some("ngx_log_error_core")
        );
        assert!(
            target("    1010:\tcall   *0x4c60b(%rip)        # 76738 <_DYNAMIC+0x398>")
                .is_some_and(|t| t.starts_with("unresolved"))
        );
        assert!(target("    1010:\tcall   *%rax").is_some_and(|t| t.starts_with("unresolved")));
        assert_eq!(target("    1010:\tnotrack jmp *%rax"), None, "a jump table");

        assert!(matches(
            "ngx_vts::stats::zone::Zone::key::{{closure}}",
            "ngx_vts::stats::zone::Zone::key"
        ));
        assert!(!matches(
            "ngx_vts::stats::zone::Zone::keys",
            "ngx_vts::stats::zone::Zone::key"
        ));
        assert!(matches("ngx::log::write_fmt", "ngx::log::"));
    }
}
