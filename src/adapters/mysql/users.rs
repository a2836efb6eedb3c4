//! User rows of the built-in identity provider.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use super::MysqlError;
use super::schema::users;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// Inserts a user; `Ok(None)` when the e-mail is taken (unique index).
pub async fn insert(
    conn: &mut AsyncMysqlConnection,
    email: &str,
    password_hash: &str,
) -> Result<Option<i64>, MysqlError> {
    let inserted = diesel::insert_into(users::table)
        .values((
            users::email.eq(email),
            users::password_hash.eq(password_hash),
        ))
        .execute(conn)
        .await;
    match inserted {
        Ok(_) => {}
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    // MySQL has no RETURNING: read the id back by the unique e-mail.
    let id = users::table
        .filter(users::email.eq(email))
        .select(users::id)
        .first(conn)
        .await?;
    Ok(Some(id))
}

pub async fn find_by_email(
    conn: &mut AsyncMysqlConnection,
    email: &str,
) -> Result<Option<UserRow>, MysqlError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Sets or clears the admin flag; returns false when no such user exists.
pub async fn set_admin(
    conn: &mut AsyncMysqlConnection,
    email: &str,
    is_admin: bool,
) -> Result<bool, MysqlError> {
    let changed = diesel::update(users::table.filter(users::email.eq(email)))
        .set(users::is_admin.eq(is_admin))
        .execute(conn)
        .await?;
    if changed > 0 {
        return Ok(true);
    }
    // MySQL reports 0 affected rows when the value was already set.
    Ok(find_by_email(conn, email).await?.is_some())
}
