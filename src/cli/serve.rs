//! `flash-sale [serve]`: run the chosen role until a stop signal.

use crate::config::Settings;
use crate::roles::{self, Role, StartupError};

pub async fn run(role: Role, settings: Settings) -> Result<(), StartupError> {
    let app = roles::start(settings, role).await?;
    app.run_until_signal().await
}
