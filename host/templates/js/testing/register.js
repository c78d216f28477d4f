// `node --import ./testing/register.js --test`: installs testing/hooks.js
// before any test imports app.js.
import { register } from 'node:module';

register('./hooks.js', import.meta.url);
