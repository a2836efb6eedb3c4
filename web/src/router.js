import { createRouter, createWebHistory } from 'vue-router';
import { session, isAdmin } from './session.js';
import { loadMe } from './api.js';
import Coupons from './pages/Coupons.vue';

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'coupons', component: Coupons, meta: { title: 'Coupons' } },
    {
      path: '/coupons/:id(\\d+)',
      name: 'coupon',
      component: () => import('./pages/CouponDetail.vue'),
      meta: { title: 'Coupon' },
    },
    { path: '/login', name: 'login', component: () => import('./pages/Login.vue'), meta: { title: 'Log in' } },
    {
      path: '/register',
      name: 'register',
      component: () => import('./pages/Register.vue'),
      meta: { title: 'Create an account' },
    },
    {
      path: '/orders',
      name: 'orders',
      component: () => import('./pages/Orders.vue'),
      meta: { title: 'My orders', auth: true },
    },
    {
      path: '/admin',
      name: 'admin',
      component: () => import('./pages/Admin.vue'),
      meta: { title: 'Manage coupons', auth: true, admin: true },
    },
    {
      path: '/not-allowed',
      name: 'forbidden',
      component: () => import('./pages/NotAllowed.vue'),
      meta: { title: 'Not allowed' },
    },
    {
      path: '/:rest(.*)*',
      name: 'not-found',
      component: () => import('./pages/NotFound.vue'),
      meta: { title: 'Not found' },
    },
  ],
  scrollBehavior: () => ({ top: 0 }),
});

router.beforeEach(async (to) => {
  if (!to.meta.auth) return true;
  if (!session.token) return { name: 'login', query: { next: to.fullPath } };
  if (!session.user) {
    try {
      await loadMe();
    } catch {
      // 401 ended the session; anything else: let the page show its own error.
      if (!session.token) return { name: 'login', query: { next: to.fullPath, expired: '1' } };
    }
  }
  if (to.meta.admin && !isAdmin()) return { name: 'forbidden', query: { from: to.fullPath } };
  return true;
});

router.afterEach((to) => {
  document.title = `${to.meta.title || 'Coupons'} · Flash Sale`;
});
