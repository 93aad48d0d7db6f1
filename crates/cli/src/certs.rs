//! `tally certs`: a CA and the certificates of a cluster, so a development stack (or a small
//! deployment) needs no other tool. Each certificate names its holder's role for the nodes'
//! authorization (`node-1.id.tally`, `gateway-dev.id.tally`, ...) and the hosts it serves on.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use tally_net::tls::{CertAuthority, Identity, Role};

const DEFAULT_DAYS: u32 = 365;

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Directory to write `ca.pem`, `ca.key` and `<role>-<name>.pem`/`.key` into. An existing
    /// `ca.pem`/`ca.key` there is reused, so more certificates can be added later.
    #[arg(long)]
    out: PathBuf,
    /// Node ids to issue node certificates for (repeatable).
    #[arg(long = "node", value_name = "ID")]
    nodes: Vec<u64>,
    /// Gateway names (repeatable). (`--gateway` is the gateway address every command takes.)
    #[arg(long = "gateway-name", value_name = "NAME")]
    gateways: Vec<String>,
    /// Operator names: the admin API's callers (repeatable).
    #[arg(long = "operator", value_name = "NAME")]
    operators: Vec<String>,
    /// Ledger client names: the ledger API only (repeatable).
    #[arg(long = "client", value_name = "NAME")]
    clients: Vec<String>,
    /// Other servers, by a name used only for the file (e.g. the PSP simulator): a server
    /// certificate with no Tally role (repeatable).
    #[arg(long = "server", value_name = "NAME")]
    servers: Vec<String>,
    /// Hosts (DNS names or IP addresses) every node, gateway and server certificate is valid
    /// for (repeatable).
    #[arg(long = "host", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    hosts: Vec<String>,
    /// Validity of each new certificate, days.
    #[arg(long, default_value_t = DEFAULT_DAYS)]
    days: u32,
    /// Overwrite certificates that exist already (a rotation); the CA is never overwritten.
    #[arg(long)]
    force: bool,
}

/// One certificate to issue: its file stem, identity and hosts.
struct Wanted {
    stem: String,
    identity: Option<Identity>,
    hosts: Vec<String>,
}

fn identity(role: Role, name: &str) -> Result<Identity> {
    Identity::new(role, name).with_context(|| {
        format!(
            "{role} name {name:?}: use lowercase letters, digits and inner hyphens (at most 63)"
        )
    })
}

fn wanted(args: &CertsArgs) -> Result<Vec<Wanted>> {
    let none_asked = args.nodes.is_empty()
        && args.gateways.is_empty()
        && args.operators.is_empty()
        && args.clients.is_empty()
        && args.servers.is_empty();
    let mut wanted = Vec::new();
    let mut add = |role: Role, name: &str, serves: bool| -> Result<()> {
        let identity = identity(role, name)?;
        wanted.push(Wanted {
            stem: identity.to_string(),
            identity: Some(identity),
            hosts: if serves {
                args.hosts.clone()
            } else {
                Vec::new()
            },
        });
        Ok(())
    };
    if none_asked {
        // The development stack: one node, one gateway, an operator, a client and the PSP
        // simulator.
        add(Role::Node, "1", true)?;
        add(Role::Gateway, "dev", true)?;
        add(Role::Operator, "dev", false)?;
        add(Role::Client, "dev", false)?;
    }
    for id in &args.nodes {
        add(Role::Node, &id.to_string(), true)?;
    }
    for name in &args.gateways {
        add(Role::Gateway, name, true)?;
    }
    for name in &args.operators {
        add(Role::Operator, name, false)?;
    }
    for name in &args.clients {
        add(Role::Client, name, false)?;
    }
    let servers: Vec<String> = if none_asked {
        vec!["psp".to_owned()]
    } else {
        args.servers.clone()
    };
    for name in servers {
        if args.hosts.is_empty() {
            bail!("--server {name} needs at least one --host");
        }
        wanted.push(Wanted {
            stem: format!("server-{name}"),
            identity: None,
            hosts: args.hosts.clone(),
        });
    }
    Ok(wanted)
}

/// Writes `text` to `path`, only readable by its owner when it is a key.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn load_or_make_ca(out: &Path, days: u32) -> Result<(CertAuthority, bool)> {
    let (cert, key) = (out.join("ca.pem"), out.join("ca.key"));
    match (cert.exists(), key.exists()) {
        (true, true) => {
            let cert_pem = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading {}", cert.display()))?;
            let key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let ca = CertAuthority::from_pem(&cert_pem, &key_pem)
                .with_context(|| format!("using the CA in {}", out.display()))?;
            Ok((ca, false))
        }
        (false, false) => {
            let ca = CertAuthority::generate("Tally cluster CA", days.max(DEFAULT_DAYS))?;
            write_file(&key, ca.key_pem().expose(), true)?;
            write_file(&cert, ca.cert_pem(), false)?;
            Ok((ca, true))
        }
        _ => bail!(
            "{} has one of ca.pem and ca.key but not the other: restore the missing one or use another --out",
            out.display()
        ),
    }
}

pub fn run(args: CertsArgs) -> Result<()> {
    let wanted = wanted(&args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for want in &wanted {
        let path = args.out.join(format!("{}.pem", want.stem));
        if path.exists() && !args.force {
            bail!(
                "{} exists: pass --force to replace it (a rotation), or choose other names",
                path.display()
            );
        }
    }
    let (ca, made) = load_or_make_ca(&args.out, args.days)?;
    println!(
        "{} {}",
        if made { "made CA" } else { "using CA" },
        args.out.join("ca.pem").display()
    );
    for want in &wanted {
        let issued = ca.issue(want.identity.as_ref(), &want.hosts, args.days)?;
        let cert = args.out.join(format!("{}.pem", want.stem));
        let key = args.out.join(format!("{}.key", want.stem));
        write_file(&key, issued.key_pem.expose(), true)?;
        write_file(&cert, &issued.cert_pem, false)?;
        let names = want
            .identity
            .iter()
            .map(Identity::dns_name)
            .chain(want.hosts.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ");
        println!("wrote {} and {} ({names})", cert.display(), key.display());
    }
    println!(
        "keep ca.key offline in production: whoever holds it can mint any role, operator included"
    );
    Ok(())
}
