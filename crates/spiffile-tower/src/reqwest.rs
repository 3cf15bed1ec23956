//! A token for reqwest requests.

use spiffile::{Identity, SpiffeId};

/// Adds a spiffile token to a reqwest request.
///
/// ```no_run
/// use spiffile_tower::RequestBuilderExt;
/// # async fn call(identity: spiffile::Identity) -> Result<(), Box<dyn std::error::Error>> {
/// let billing: spiffile::SpiffeId = "spiffe://example.org/billing".parse()?;
/// let response = reqwest::Client::new()
///     .get("http://billing.internal/invoices")
///     .spiffile_token(&identity, &billing)?
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
pub trait RequestBuilderExt: Sized {
    /// Sets `Authorization: Bearer <token>` (marked sensitive) with a token
    /// from `identity` for `audience` ([`Identity::token`]: reused while it
    /// has more than half of its lifetime left).
    fn spiffile_token(
        self,
        identity: &Identity,
        audience: &SpiffeId,
    ) -> Result<Self, spiffile::Error>;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn spiffile_token(
        self,
        identity: &Identity,
        audience: &SpiffeId,
    ) -> Result<Self, spiffile::Error> {
        Ok(self.bearer_auth(identity.token(audience)?))
    }
}
