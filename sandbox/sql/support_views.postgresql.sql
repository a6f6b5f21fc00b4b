-- The sandbox company's support views (PostgreSQL), as a company writes its own: each a security_barrier view
-- filtered on public.support_bound_tenant(), showing nothing support may not see (no password_hash, internal_notes,
-- payment_method_last4). Installed by `manage.py support_sql_install --views-sql` (sandbox migration 0002).

CREATE OR REPLACE VIEW public.support_tenant_overview WITH (security_barrier) AS
SELECT t.id AS tenant_id,
       t.name,
       t.plan,
       t.status,
       t.trial_ends_at,
       t.cache_version,
       t.cache_reset_at,
       t.region,
       t.created_at
FROM public.sandbox_tenant AS t
WHERE t.id = public.support_bound_tenant();

CREATE OR REPLACE VIEW public.support_tenant_users WITH (security_barrier) AS
SELECT u.id AS user_id,
       u.tenant_id,
       u.email,
       u.role,
       u.failed_logins,
       u.locked,
       u.locked_at,
       u.last_login_at
FROM public.sandbox_tenant_user AS u
WHERE u.tenant_id = public.support_bound_tenant();

CREATE OR REPLACE VIEW public.support_login_attempts WITH (security_barrier) AS
SELECT a.id AS attempt_id,
       a.tenant_id,
       a.user_id,
       a.email,
       a.attempted_at,
       a.success,
       a.ip_address
FROM public.sandbox_login_attempt AS a
WHERE a.tenant_id = public.support_bound_tenant();

CREATE OR REPLACE VIEW public.support_subscriptions WITH (security_barrier) AS
SELECT s.id AS subscription_id,
       s.tenant_id,
       s.plan,
       s.status,
       s.seats,
       s.monthly_amount_cents,
       s.currency,
       s.current_period_end
FROM public.sandbox_subscription AS s
WHERE s.tenant_id = public.support_bound_tenant();

CREATE OR REPLACE VIEW public.support_invoices WITH (security_barrier) AS
SELECT i.id AS invoice_id,
       i.tenant_id,
       i.number,
       i.amount_cents,
       i.currency,
       i.status,
       i.issued_at,
       i.paid_at
FROM public.sandbox_invoice AS i
WHERE i.tenant_id = public.support_bound_tenant();

CREATE OR REPLACE VIEW public.support_tenant_config WITH (security_barrier) AS
SELECT c.tenant_id,
       c.key,
       c.value,
       c.updated_at
FROM public.sandbox_tenant_config AS c
WHERE c.tenant_id = public.support_bound_tenant();
