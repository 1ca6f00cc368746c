/** Set by the certbot issuer on a fleet node's certonly: the webroot its vhost serves tokens from for the names. */
export const FLEET_WEBROOT_ENV = 'AUTOSSL_FLEET_WEBROOT';
