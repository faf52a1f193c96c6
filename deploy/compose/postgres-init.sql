-- One database and one login role per service, each owning its database. The roles have no
-- password: pg_hba (postgres-hba.conf) lets them in over TLS with a client certificate whose CN
-- is the role's name.
CREATE ROLE careplan LOGIN;
CREATE ROLE scheduling LOGIN;
CREATE ROLE notes LOGIN;
CREATE DATABASE careplan OWNER careplan;
CREATE DATABASE scheduling OWNER scheduling;
CREATE DATABASE notes OWNER notes;
