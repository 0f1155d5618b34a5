//! The HTTP client of an attack: its settings ([`ClientOptions`]) and how they become a
//! `reqwest::Client` (rustls, HTTP/2 where offered, the redirect policy that keeps custom
//! headers on their origin). Each worker gets its own client, so each has its own pool.

/// HTTP client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub keepalive: bool,
    /// Open connections before the schedule starts (`super::warm`).
    pub warm: bool,
    pub http2: bool,
    pub insecure: bool,
    /// Connections kept idle per host; at least the in-flight cap so bursts reuse them.
    pub max_idle_per_host: usize,
    /// Redirects followed per request (0: a 3xx is the answer).
    pub redirects: u32,
    /// The requests carry headers the user set: a redirect to another origin would hand them
    /// to a server they were not meant for, so it fails instead of being followed.
    pub custom_headers: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            keepalive: true,
            warm: true,
            http2: true,
            insecure: false,
            max_idle_per_host: 10_000,
            redirects: 0,
            custom_headers: false,
        }
    }
}

/// Builds the shared HTTP client (rustls; HTTP/2 when the server offers it over TLS).
pub fn client(opts: &ClientOptions) -> anyhow::Result<reqwest::Client> {
    // reqwest is built without a default crypto provider; ring is ours. A second install
    // attempt (another attack in the same process) fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(if opts.keepalive {
            opts.max_idle_per_host
        } else {
            0
        })
        .tls_danger_accept_invalid_certs(opts.insecure)
        .redirect(redirect_policy(opts))
        .user_agent(concat!("rpload/", env!("CARGO_PKG_VERSION")));
    if !opts.http2 {
        b = b.http1_only();
    }
    Ok(b.build()?)
}

/// Follows up to `opts.redirects` hops; never one that would carry custom headers to another
/// origin (reqwest drops `Authorization` and cookies there, but not an `X-Api-Key`).
fn redirect_policy(opts: &ClientOptions) -> reqwest::redirect::Policy {
    let (limit, guard) = (opts.redirects as usize, opts.custom_headers);
    if limit == 0 {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        let first = &attempt.previous()[0];
        let next = attempt.url();
        if guard && next.origin() != first.origin() {
            let to = crate::redact::url(next.as_str());
            return attempt.error(format!(
                "redirect to another origin ({to}) not followed: it would receive this attack's custom headers"
            ));
        }
        if attempt.previous().len() > limit {
            return attempt.error(format!(
                "more than --redirects {limit} redirects; raise it to follow this chain"
            ));
        }
        attempt.follow()
    })
}
